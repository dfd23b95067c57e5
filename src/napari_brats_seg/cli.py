"""The ``brats-seg`` command line: thin sub-commands over the core.

Each sub-command lives in :mod:`napari_brats_seg.commands` as a module with
``register(subparsers)`` that adds its parser and sets ``func(args) -> int``. Modules are imported
only when listed here, and heavy libraries (torch, napari) only inside ``func``, so ``brats-seg
--help`` and ``brats-seg info`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .core.errors import BratsSegError
from .core.memory import keep_freed_memory

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("info", "dicom", "prepare", "score", "synth", "segment", "models", "train", "evaluate", "view",
            "measure", "report", "compare")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="brats-seg",
        description="Brain-tumour segmentation of multimodal MRI: read, segment, score, train.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"napari_brats_seg.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"napari_brats_seg.commands.{name}":
                continue  # not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``brats-seg``; returns the exit code (0 success, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    keep_freed_memory()  # whole-volume arrays reuse the process's pages (core.memory)
    try:
        return int(args.func(args) or 0)
    except BratsSegError as exc:
        print(f"brats-seg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # ``brats-seg ... | head``: the reader went away; not an error of ours.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"brats-seg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
