"""Builders of broken NIfTI files as a hostile or unlucky user meets them (raw header bytes, no mocks)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np


def header_only(path: Path, shape: Sequence[int], payload: bytes = b"", dtype: type = np.int16) -> Path:
    """A NIfTI file whose header claims ``shape`` but which holds only ``payload`` after it."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(tuple(shape))
    hdr.set_data_dtype(dtype)
    hdr.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), code=1)
    hdr.set_qform(np.diag([-1.0, -1.0, 1.0, 1.0]), code=1)
    raw = hdr.binaryblock + b"\0" * 4 + payload
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def with_sform(src: Path, dst: Path, srows: np.ndarray) -> Path:
    """``src``'s data with an sform (code 1) of the given 3x4 rows and no qform, written as stored."""
    img = nib.load(str(src))
    hdr = img.header.copy()
    hdr["sform_code"], hdr["qform_code"] = 1, 0
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = srows
    out = nib.Nifti1Image(np.asarray(img.dataobj), None, hdr)
    nib.save(out, str(dst))
    return dst


def with_pixdim(src: Path, dst: Path, pixdim: Sequence[float], sform: bool) -> Path:
    """``src`` rewritten uncompressed with raw ``pixdim[1:4]`` bytes (nibabel would fix them on save)."""
    img = nib.load(str(src))
    hdr = img.header.copy()
    hdr["qform_code"], hdr["sform_code"] = 1, (1 if sform else 0)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, hdr), str(dst))
    raw = bytearray(dst.read_bytes())
    raw[80:92] = struct.pack("<3f", *pixdim)
    dst.write_bytes(bytes(raw))
    return dst
