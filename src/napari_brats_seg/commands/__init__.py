"""Sub-commands of ``brats-seg``: one module each, with ``register(subparsers)``."""
