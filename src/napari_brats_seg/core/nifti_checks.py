"""Checks of a NIfTI header against its file, before any voxel is read.

A header is a claim: its shape and data type say how many bytes follow, its sform/qform and pixdim
where the voxels lie. :func:`check_header` tests the claim cheaply (file sizes, the gzip trailer, a
bounded stream through the compressed data) so that a lying or broken header costs no memory and
ends in a :class:`~.errors.CaseError` naming the file, never in ``MemoryError`` or a nibabel
traceback.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import CaseError

#: Most voxels (all axes, channels included) one file may claim: 2^28, e.g. 512 x 512 x 256 x 4.
#: A BraTS volume has 8.9 million; the largest clinical 3D MRI series are about 10^8.
MAX_VOXELS = 2**28
#: Deflate cannot compress better than about 1032:1 (258-byte matches in 2-bit codes, RFC 1951).
MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20


def _mb(n: int) -> str:
    return f"{n / 1e6:.3g} MB"


@contextmanager
def quiet_nibabel() -> Iterator[None]:
    """Silence nibabel's header-fixing log lines (we check and report the header ourselves)."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _raw_header(path: Path, klass: type) -> nib.Nifti1Header | None:
    """The header as stored (nibabel fixes bad pixdim on load), or None when it cannot be re-read."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f, quiet_nibabel():
            return klass.from_fileobj(f, check=False)
    except Exception:  # noqa: BLE001 - the full load already succeeded; this is a second look
        return None


def _gzip_payload(path: Path, need: int) -> int:
    """Bytes the gzip file decompresses to, counted up to ``need`` (constant memory)."""
    trailer = 0
    size = path.stat().st_size
    if size >= 18:
        with open(path, "rb") as f:
            f.seek(size - 4)
            trailer = struct.unpack("<I", f.read(4))[0]
    if trailer == need % 2**32:
        return need  # the trailer agrees with the header: the common, honest case
    got = 0
    try:
        with gzip.open(path, "rb") as f:
            while got < need:
                block = f.read(min(_CHUNK, need - got))
                if not block:
                    break
                got += len(block)
    except (EOFError, zlib.error, OSError):
        pass  # truncated: ``got`` is what could be read
    return got


def data_offset(img: nib.Nifti1Image) -> int:
    """Where the voxels start in the (decompressed) file: the header's ``vox_offset`` as read.

    A loaded image's header reports offset 0 (nibabel resets it for writing); its data proxy keeps
    the offset the file was read with.
    """
    offset = getattr(img.dataobj, "offset", None)
    if offset is None:
        offset = int(img.header.get_data_offset()) if hasattr(img.header, "get_data_offset") else 352
    return int(offset)


def check_size(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse a header whose shape and data type claim more bytes than the file holds or is sane.

    Raises
    ------
    CaseError
        Too many voxels, or more bytes claimed than the file (or its compressed stream) holds.
    """
    shape = tuple(int(s) for s in img.shape)
    voxels = int(np.prod(shape, dtype=object)) if shape else 0
    if voxels > MAX_VOXELS:
        raise CaseError(f"header claims {'x'.join(map(str, shape))} = {voxels:.3g} voxels, more than the "
                        f"{MAX_VOXELS:.3g} any MRI volume needs: corrupt or not an MRI volume", path)
    hdr = img.header
    itemsize = np.dtype(hdr.get_data_dtype()).itemsize
    offset = data_offset(img)
    need = voxels * itemsize
    claim = f"header claims {'x'.join(map(str, shape))} voxels of {hdr.get_data_dtype()} ({_mb(need)})"
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        if offset + need > size * MAX_DEFLATE_RATIO + 1024:
            raise CaseError(f"{claim}, but a {_mb(size)} gzip file cannot hold that much "
                            "(deflate compresses at most about 1000:1): the header lies or the file is cut", path)
        got = _gzip_payload(path, offset + need)
        if got < offset + need:
            raise CaseError(f"truncated or corrupt image data ({claim}, but the compressed data holds only "
                            f"{_mb(max(got - offset, 0))})", path)
    elif size < offset + need:
        raise CaseError(f"truncated or corrupt image data ({claim}, but the file holds only "
                        f"{_mb(max(size - offset, 0))} after the header)", path)


def check_geometry(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse an affine that places no volume (a zero or non-finite column, a singular matrix) and a
    pixdim that is zero or negative where the affine depends on it.

    Raises
    ------
    CaseError
        Naming the form (sform, qform or pixdim) and what is wrong with it.
    """
    hdr = img.header
    aff = np.asarray(img.affine, float)
    sform_code = int(hdr["sform_code"])
    qform_code = int(hdr["qform_code"])
    source = "sform" if sform_code > 0 else ("qform" if qform_code > 0 else "pixdim (no sform or qform)")
    if sform_code <= 0:
        raw = _raw_header(path, type(hdr))
        pix = np.asarray((raw if raw is not None else hdr)["pixdim"][1:4], float)
        bad = [f"pixdim[{i + 1}] = {v:g}" for i, v in enumerate(pix) if not (np.isfinite(v) and v > 0)]
        if bad:
            raise CaseError(f"voxel size {', '.join(bad)}: a voxel size must be positive (the file has no "
                            "sform to say otherwise); the header is invalid", path)
    if not np.all(np.isfinite(aff)):
        raise CaseError(f"the {source} affine holds NaN or infinite values", path)
    lin = aff[:3, :3]
    norms = np.sqrt((lin**2).sum(axis=0))
    zero = [i for i, n in enumerate(norms) if n < 1e-6]
    if zero:
        raise CaseError(f"the {source} affine has a zero column for voxel axis {', '.join(map(str, zero))} "
                        "(that axis has no size or direction): the header is invalid", path)
    if abs(np.linalg.det(lin / norms)) < 1e-3:
        raise CaseError(f"the {source} affine is singular (two voxel axes point the same way): "
                        "the header is invalid", path)


def check_header(img: nib.Nifti1Image, path: Path) -> None:
    """:func:`check_size` and :func:`check_geometry`: everything checkable before the data is read."""
    check_size(img, path)
    check_geometry(img, path)
