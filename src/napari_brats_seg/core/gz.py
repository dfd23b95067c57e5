"""Whole-file gzip for ``.nii.gz``: decompress a file in one call, compress an image's bytes in one call.

NIfTI volumes are read whole, so one-shot decompression of the file's bytes replaces nibabel's
streamed ``gzip`` reads. With `python-isal <https://github.com/pycompression/python-isal>`_
installed (a dependency of the package; ISA-L's igzip, several times zlib's speed on x86-64) both
directions use it; without it, Python's own :mod:`gzip` (zlib) does the same work. Both check the
CRC-32 and length of every member and produce standard gzip streams any reader opens.

Compression uses level 1, nibabel's default for ``.nii.gz`` (label maps compress well at any level;
higher levels cost several times the time for a few percent of size).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

#: Compression level of written ``.nii.gz`` files (nibabel's default).
COMPRESS_LEVEL = 1

_impl: dict[str, Any] = {}


def _module() -> Any:
    """``isal.igzip`` when installed, else :mod:`gzip` (looked up once)."""
    if "mod" not in _impl:
        try:
            from isal import igzip
        except ImportError:  # pragma: no cover - isal is a dependency; plain zlib still works
            igzip = gzip
        _impl["mod"] = igzip
    return _impl["mod"]


def backend() -> str:
    """``"isal"`` or ``"zlib"``: which implementation :func:`decompress_file` and :func:`compress` use."""
    return "zlib" if _module() is gzip else "isal"


def decompress_file(path: str | Path) -> bytes:
    """The decompressed content of a gzip file, read in one call.

    Raises
    ------
    EOFError
        The file is truncated.
    OSError
        (``gzip.BadGzipFile``) not a gzip file, or a CRC or length mismatch.
    """
    return _module().decompress(Path(path).read_bytes())


def compress(data: bytes, level: int = COMPRESS_LEVEL) -> bytes:
    """``data`` as one gzip member at ``level``."""
    return _module().compress(data, compresslevel=level)


__all__ = ["COMPRESS_LEVEL", "backend", "compress", "decompress_file"]
