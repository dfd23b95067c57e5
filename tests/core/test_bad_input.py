"""Bad input as issue 12 found it: every one is a CaseError naming the file, never a traceback,
a MemoryError or a silent wrong reading. Real files, raw header bytes where nibabel would fix them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _badfiles import header_only, with_pixdim, with_sform
from nibabel import orientations as nio

from napari_brats_seg.core import io
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import CaseError

ROOT = Path(__file__).resolve().parents[2]


def _expect(source, *needles: str, **kw) -> str:
    with pytest.raises(CaseError) as info:
        io.read_case(source, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_sform_with_a_zero_column_is_a_clear_error(make_case) -> None:
    folder = make_case()
    t2 = folder / "Tiny_1_t2.nii.gz"
    srows = np.array([[0.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0]])  # voxel axis 0 has no direction
    with_sform(t2, t2, srows)
    _expect(folder, str(t2), "sform affine has a zero column for voxel axis 0")


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_header_claiming_32767_cubed_voxels_is_refused_before_reading(make_case, ext: str) -> None:
    folder = make_case()
    t1 = folder / "Tiny_1_t1.nii.gz"
    t1.unlink()
    bad = header_only(folder / f"Tiny_1_t1{ext}", (32767, 32767, 32767), b"\1\0" * 100)
    _expect(folder, str(bad), "header claims 32767x32767x32767", "voxels")


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_header_claiming_more_data_than_the_file_holds(make_case, ext: str) -> None:
    folder = make_case()
    (folder / "Tiny_1_flair.nii.gz").unlink()
    # 1 MB claimed (within every sane bound), 2 KB present: a lie only the file size tells
    bad = header_only(folder / f"Tiny_1_flair{ext}", (128, 128, 32), os.urandom(2048))
    _expect(folder, str(bad), "truncated or corrupt image data", "header claims 128x128x32 voxels of int16",
            "holds only")


@pytest.mark.parametrize("shape,dtype,why", [
    ((2048, 2048, 512), np.int16, "more than the"),  # the file: 4.3 GB claimed by 82 KB
    ((1024, 1024, 256), np.float32, "cannot hold that much"),  # 1.1 GB: a sane shape, an impossible ratio
])
def test_a_lying_header_costs_no_memory(make_case, shape, dtype, why: str) -> None:
    """``brats-seg info`` under a 1.5 GB address-space limit: the clear error, not a MemoryError."""
    folder = make_case()
    (folder / "Tiny_1_t1ce.nii.gz").unlink()
    bad = header_only(folder / "Tiny_1_t1ce.nii.gz", shape, os.urandom(82_000), dtype=dtype)
    assert bad.stat().st_size < 100_000
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20)); "
            "from napari_brats_seg.cli import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, "info", str(folder)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and f"header claims {'x'.join(map(str, shape))}" in proc.stderr
    assert why in proc.stderr


@pytest.mark.parametrize("pixdim,word", [((0.0, 1.0, 1.0), "pixdim[1] = 0"), ((1.0, -2.0, 1.0), "pixdim[2] = -2")])
def test_pixdim_zero_or_negative_is_a_clear_error(make_case, pixdim, word: str) -> None:
    folder = make_case(seg_values=None)
    t1 = folder / "Tiny_1_t1.nii.gz"
    bad = with_pixdim(t1, folder / "Tiny_1_t1.nii", pixdim, sform=False)
    t1.unlink()
    _expect(folder, str(bad), word, "voxel size must be positive")


def test_pixdim_does_not_matter_under_a_valid_sform(make_case) -> None:
    folder = make_case(seg_values=None)
    t1 = folder / "Tiny_1_t1.nii.gz"
    with_pixdim(t1, folder / "Tiny_1_t1.nii", (0.0, 1.0, 1.0), sform=True)
    t1.unlink()
    case = io.read_case(folder)  # the sform says where the voxels lie; pixdim is not used
    assert case.spacing == (1.0, 1.0, 1.0)


def test_a_sequence_stored_transposed_on_the_same_grid_is_read_exactly(make_case) -> None:
    folder = make_case()
    ref = io.read_case(folder)
    t2 = folder / "Tiny_1_t2.nii.gz"
    img = nib.load(str(t2))
    ornt = nio.ornt_transform(nio.io_orientation(img.affine), nio.axcodes2ornt(("S", "A", "R")))
    data = nio.apply_orientation(np.asarray(img.dataobj), ornt)
    aff = img.affine @ nio.inv_ornt_aff(ornt, img.shape)
    nib.save(nib.Nifti1Image(data, aff, img.header), str(t2))
    assert nib.load(str(t2)).shape != img.shape  # really stored in another voxel order
    case = io.read_case(folder)
    for m in ref.images:
        np.testing.assert_array_equal(case.images[m], ref.images[m])
    # the same voxel order on another grid is still refused, and the message says what differs
    shifted = aff.copy()
    shifted[:3, 3] += 0.5
    nib.save(nib.Nifti1Image(data, shifted, img.header), str(t2))
    msg = _expect(folder, str(t2), "affine differs by up to")
    assert "stored in voxel order SAR instead of LPS (that alone would be fine)" in msg


def test_ground_truth_whose_values_disagree_with_a_release_name_asks(make_case) -> None:
    """{0,1,2,3,4} in a BraTS 2018-named case: 2012-2016's non-enhancing core, or 2024's cavity?"""
    folder = make_case("Brats18_2013_99_1", seg_values=(0, 1, 2, 3, 4))
    seg = folder / "Brats18_2013_99_1_seg.nii.gz"
    msg = _expect(folder, str(seg), "ambiguous label scheme", "brats2013", "brats2023", "resection cavity",
                  "non-enhancing")
    assert "choose the scheme" in msg
    raw = np.asarray(nib.load(str(seg)).dataobj)
    old = io.read_case(folder, scheme="brats2013")  # 4 = enhancing tumour, 3 = non-enhancing core
    new = io.read_case(folder, scheme="brats2023")  # 3 = enhancing tumour, 4 = resection cavity
    to_int = old.geometry.to_internal
    assert np.array_equal(old.ground_truth == lab.ENHANCING, to_int(raw == 4))
    assert np.array_equal(old.ground_truth == lab.NECROTIC, to_int((raw == 1) | (raw == 3)))
    assert np.array_equal(new.ground_truth == lab.ENHANCING, to_int(raw == 3))
    assert lab.get_scheme("brats2013").value_of(lab.NECROTIC) == 1  # written back as 1, not 3


def test_info_takes_the_gt_scheme_override(make_case) -> None:
    folder = make_case("Brats18_2013_99_1", seg_values=(0, 1, 2, 3, 4))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "napari_brats_seg.cli", "info", str(folder)]
    asked = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert asked.returncode == 2 and "ambiguous label scheme" in asked.stderr and "Traceback" not in asked.stderr
    told = subprocess.run([*cmd, "--gt-scheme", "brats2013"], capture_output=True, text=True, env=env, timeout=120)
    assert told.returncode == 0, told.stderr
    assert "scheme brats2013" in told.stdout and "enhancing tumour" in told.stdout
