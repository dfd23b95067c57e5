"""The project's typed exceptions.

Every error that crosses a module, thread or process boundary is one of these, so that the CLI can
print a one-line reason and the napari widgets can show a notification instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class BratsSegError(Exception):
    """Base class of every error this package raises on purpose."""


class CaseError(BratsSegError):
    """A case, or one of its files, cannot be used.

    Parameters
    ----------
    message
        What is wrong, in words a user understands.
    path
        The offending file or folder, named in the message when given.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class LabelSchemeError(BratsSegError):
    """A label map's values fit no known scheme, or its scheme is ambiguous."""


class OutputExistsError(BratsSegError):
    """Writing would replace an existing file (or an input) without being asked to."""


class ModelError(BratsSegError):
    """A model or checkpoint cannot be loaded, or does not fit the case it is asked to segment."""


class InferenceError(BratsSegError):
    """Inference failed (out of memory, shape mismatch, ...); the message says why."""


class Cancelled(BratsSegError):
    """Work was cancelled by the user through a cancel token."""


class OutputError(BratsSegError, OSError):
    """An output cannot be written (permission, read-only or full disk, ...).

    The message names the user's path, never a hidden temporary file. It is also an ``OSError``,
    so code that catches write failures as ``OSError`` keeps working.

    Parameters
    ----------
    message
        What is wrong, in words a user understands.
    path
        The output file or folder the user asked for.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
