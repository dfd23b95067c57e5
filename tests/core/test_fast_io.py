"""One-shot .nii.gz reading and writing (core.gz): the same voxels and files as nibabel's own paths."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.core import gz, io
from napari_brats_seg.core.nifti_checks import data_offset


@pytest.fixture
def zlib_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """core.gz as on a machine without isal: Python's gzip module."""
    monkeypatch.setitem(gz._impl, "mod", gzip)


def test_real_files_read_as_nibabel_reads_them(real_case_dir: Path) -> None:
    files = sorted(real_case_dir.glob("*.nii.gz"))
    assert len(files) == 5
    for p in files:
        data, _ = io.load_nifti(p, allow_empty=True)
        ref = np.asanyarray(nib.load(str(p)).dataobj)
        assert data.dtype == ref.dtype and data.shape == ref.shape, p.name
        np.testing.assert_array_equal(data, ref, err_msg=p.name)
        assert data.flags.writeable
        # the offset the voxels were read at is the file's vox_offset (a loaded header says 0)
        with gzip.open(p, "rb") as f:
            assert data_offset(nib.load(str(p))) == int(nib.Nifti1Header.from_fileobj(f)["vox_offset"])


def test_read_case_arrays_are_writeable_float32(real_crop_dir: Path) -> None:
    case = io.read_case(real_crop_dir)
    for name, arr in case.images.items():
        assert arr.dtype == np.float32 and arr.flags.writeable and arr.flags.c_contiguous, name
    arr = case.images["t1"]
    arr[0, 0, 0] += 1  # the case owns its arrays


@pytest.mark.parametrize("dtype", ["<i2", ">i2", ">f4", "<u1"])
def test_scaled_and_big_endian_files(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((9, 8, 7)) * 100).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0]))
    img.header.set_data_dtype(np.dtype(dtype))
    if np.dtype(dtype).kind != "f":
        img.header.set_slope_inter(0.5, 3.0)
    p = tmp_path / "x.nii.gz"
    nib.save(img, str(p))
    data, _ = io.load_nifti(p)
    ref = np.asanyarray(nib.load(str(p)).dataobj)
    assert data.dtype == ref.dtype
    np.testing.assert_array_equal(data, ref)


def test_isal_and_zlib_give_the_same_voxels_and_files(real_crop_dir: Path, tmp_path: Path, request) -> None:
    case = io.read_case(real_crop_dir)
    out = io.write_labels(case.ground_truth, case, tmp_path / "a.nii.gz")
    request.getfixturevalue("zlib_only")
    assert gz.backend() == "zlib"
    case2 = io.read_case(real_crop_dir)
    for m in case.images:
        np.testing.assert_array_equal(case.images[m], case2.images[m])
    np.testing.assert_array_equal(case.ground_truth, case2.ground_truth)
    out2 = io.write_labels(case2.ground_truth, case2, tmp_path / "b.nii.gz")
    # both are plain gzip streams of the same NIfTI bytes
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(out2.read_bytes())
    back = nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(nib.load(str(case.gt_path)).dataobj))


def test_truncated_gz_is_a_case_error_with_either_backend(real_crop_dir: Path, tmp_path: Path, request) -> None:
    from napari_brats_seg.core.errors import CaseError

    src = next(real_crop_dir.glob("*_t1.nii.gz")).read_bytes()
    # keep the header and the trailer (so the size check passes), cut the middle of the stream
    bad = tmp_path / "Cut_1_t1.nii.gz"
    bad.write_bytes(src[: len(src) // 2] + src[-8:])
    for backend in ("isal", "zlib"):
        if backend == "zlib":
            request.getfixturevalue("zlib_only")
        with pytest.raises(CaseError, match="Cut_1_t1"):
            io.load_nifti(bad)
