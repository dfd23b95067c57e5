"""Fixtures for the core tests: a 64^3 crop of a real case, and builders of small NIfTI cases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _crop import tumour_window

MODS_2021 = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair"}
CROP = 64


def save_like(data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header, path: Path,
              dtype: np.dtype | type | None = None) -> Path:
    """Save ``data`` with a copy of ``header`` whose qform and sform are ``affine`` with the header's codes."""
    hdr = header.copy()
    if dtype is not None:
        hdr.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.asarray(data), affine, hdr)
    img.set_qform(affine, int(header["qform_code"]))
    img.set_sform(affine, int(header["sform_code"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


@pytest.fixture(scope="session")
def nifti_save() -> Callable[..., Path]:
    """:func:`save_like`, for test modules (they cannot import this conftest)."""
    return save_like


@pytest.fixture(scope="session")
def real_crop_dir(real_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64^3 crop around the tumour of a real BraTS 2018 case, as a BraTS 2018 folder (.nii.gz).

    Every file keeps its own header (data type, qform/sform codes); the affines are shifted so
    the crop lies where it lay in the full volume.
    """
    case_id = real_case_dir.name
    sl, shift = tumour_window(real_case_dir / f"{case_id}_seg.nii.gz", (CROP,) * 3)
    out = tmp_path_factory.mktemp("real_crop") / "Crop_2013_11_1"
    for suffix in ("t1", "t1ce", "t2", "flair", "seg"):
        img = nib.load(str(real_case_dir / f"{case_id}_{suffix}.nii.gz"))
        save_like(np.asarray(img.dataobj)[sl], img.affine @ shift, img.header,
                  out / f"Crop_2013_11_1_{suffix}.nii.gz")
    return out


@pytest.fixture
def make_case(tmp_path: Path) -> Callable[..., Path]:
    """Factory of a small valid BraTS 2018-named case folder of random int16 images (and a seg).

    Call ``make_case(name="X", shape=(16, 16, 12), seg_values=(0, 1, 2, 4))``; returns the folder.
    ``seg_values=None`` writes no seg.
    """

    def _make(name: str = "Tiny_1", shape: Sequence[int] = (16, 16, 12),
              seg_values: Sequence[int] | None = (0, 1, 2, 4), affine: np.ndarray | None = None,
              ext: str = ".nii.gz") -> Path:
        rng = np.random.default_rng(0)
        aff = np.diag([-1.0, -1.0, 1.0, 1.0]) if affine is None else affine
        hdr = nib.Nifti1Header()
        hdr.set_xyzt_units("mm")
        hdr["qform_code"], hdr["sform_code"] = 1, 1
        folder = tmp_path / name
        for mod in MODS_2021:
            data = rng.integers(1, 1000, size=tuple(shape)).astype(np.int16)
            save_like(data, aff, hdr, folder / f"{name}_{mod}{ext}")
        if seg_values is not None:
            seg = np.asarray(seg_values, dtype=np.uint8)[rng.integers(0, len(seg_values), size=tuple(shape))]
            save_like(seg, aff, hdr, folder / f"{name}_seg{ext}", dtype=np.uint8)
        return folder

    return _make
