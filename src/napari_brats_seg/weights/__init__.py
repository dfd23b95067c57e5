"""Shipped model checkpoints (``<name>.safetensors``), found by name with ``load_model``."""
