"""The placement of a case on a model's grid: exact inverses in every file orientation, the 2 mm
round trip, the JSON record, and the crop's origin computed arithmetically.

Cases are 32x32x24 crops around the tumour of a real BraTS 2018 case (stored as LPS, RAS, permuted
and oblique files) and a 64^3 crop of it, so the module runs in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _crop import tumour_window
from nibabel import orientations as nio
from scipy import ndimage

from napari_brats_seg.core import preprocess as pp
from napari_brats_seg.core.io import read_case
from napari_brats_seg.core.models.spec import ModelSpec
from napari_brats_seg.core.placement import Crop, Pad, Placement, Reorient, Resample, prepare

CROP = (32, 32, 24)


@pytest.fixture(scope="module")
def variants(real_case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same crop stored as LPS, RAS, with permuted axes, and oblique (rotated 12 degrees)."""
    cid = real_case_dir.name
    sl, shift = tumour_window(real_case_dir / f"{cid}_seg.nii.gz", CROP)
    root = tmp_path_factory.mktemp("placement_variants")
    perm = np.array([[1, 1], [2, -1], [0, 1]])
    t = math.radians(12.0)
    rot = np.eye(4)
    rot[:2, :2] = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    out = {v: root / v for v in ("lps", "ras", "permuted", "oblique")}
    for suffix in ("t1", "t1ce", "t2", "flair", "seg"):
        img = nib.load(str(real_case_dir / f"{cid}_{suffix}.nii.gz"))  # read once, written four ways
        crop, crop_aff = np.asarray(img.dataobj)[sl], img.affine @ shift
        for variant in out:
            data, aff = crop, crop_aff
            ornt = {"ras": nio.ornt_transform(nio.io_orientation(aff), nio.axcodes2ornt(("R", "A", "S"))),
                    "permuted": perm}.get(variant)
            if ornt is not None:
                data, aff = nio.apply_orientation(data, ornt), aff @ nio.inv_ornt_aff(ornt, data.shape)
            if variant == "oblique":
                aff = rot @ aff
            new = nib.Nifti1Image(data, aff, img.header.copy())
            new.set_qform(aff, 1)
            new.set_sform(aff, 1)
            out[variant].mkdir(exist_ok=True)
            nib.save(new, str(out[variant] / f"V{variant}_{suffix}.nii.gz"))
    return out


def _read(folder: Path, slices: int = 5):
    """The case with no brain in its lowest axial ``slices`` and 7 first columns, so that it is cropped."""
    case = read_case(folder)
    for a in case.images.values():
        a[:slices] = 0
        a[:, :, :7] = 0
    return case


def _spec(**kw) -> ModelSpec:
    base = {"name": "p", "family": "unet3d", "divisible_by": 16, "spacing": (1.0, 1.0, 1.0)}
    base.update(kw)
    return ModelSpec(**base)


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "SAR"])
def test_restore_inverts_prepare_exactly_in_every_file_orientation(variants, orientation):
    spec = _spec(orientation=orientation)
    inputs = {}
    for variant, folder in variants.items():
        case = _read(folder)
        x, pl = prepare(case, spec)
        assert [type(s) for s in pl.steps] == [Crop, Reorient, Pad] and pl.exact
        assert all(n % 16 == 0 for n in x.shape[1:]) and x.shape[1:] == pl.shape
        # the network input is the normalised case carried through the steps, padded with the background
        normed = pp.normalize(case.stack(spec.channels), spec.normalization)
        np.testing.assert_array_equal(x, pl.forward(normed))
        # restore(forward(a)) == a inside the crop, and the fill outside it, for images and label maps
        box = pl.crop_box
        back = pl.restore(x, fill=list(pl.background))
        np.testing.assert_array_equal(back[(slice(None),) + box], normed[(slice(None),) + box])
        gt = case.ground_truth
        lab = pl.restore(pl.forward(gt, labels=True), labels=True, fill=0)
        assert lab.dtype == gt.dtype and lab.shape == case.shape
        np.testing.assert_array_equal(lab[box], gt[box])
        outside = np.ones(case.shape, bool)
        outside[box] = False
        assert not lab[outside].any()
        inputs[variant] = x
    for variant in ("ras", "permuted", "oblique"):  # every file orientation gives the network the same input
        np.testing.assert_array_equal(inputs[variant], inputs["lps"], err_msg=variant)


def test_without_crop_the_restore_is_exact_everywhere(variants):
    case = read_case(variants["permuted"])
    x, pl = prepare(case, _spec(orientation="RAS", divisible_by=1), crop=False)
    assert [type(s) for s in pl.steps] == [Reorient]
    gt = case.ground_truth
    np.testing.assert_array_equal(pl.restore(pl.forward(gt, labels=True), labels=True), gt)
    assert x.shape[1:] == pp.to_model_axes(gt, "RAS").shape


def _old_origin(case_shape, box, orientation, before):
    """The former way: a whole-volume array holding the box, reoriented, searched for its first voxel."""
    placed = np.zeros(case_shape, np.uint8)
    placed[box] = 1
    m = pp.to_model_axes(placed, orientation)
    first = [int(np.flatnonzero(m.any(axis=tuple(b for b in range(3) if b != a)))[0]) for a in range(3)]
    return tuple(f - b for f, b in zip(first, before)), m.shape


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "SAR", "ILA", "PSR"])
def test_crop_origin_arithmetic_equals_the_whole_volume_way(orientation):
    rng = np.random.default_rng(1)
    shape = (23, 31, 17)
    for _ in range(5):
        lo = rng.integers(0, [10, 15, 8])
        hi = lo + rng.integers(1, [12, 15, 9])
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        crop = Crop(shape, tuple((s.start, s.stop) for s in box))
        reorient = Reorient(crop.out_shape, orientation)
        before = tuple(int(v) for v in rng.integers(0, 4, 3))
        pad = Pad(reorient.out_shape, before, (1, 0, 2))
        pl = Placement(shape, (crop, reorient, pad))
        origin, image_shape = pl.origin()
        assert (origin, image_shape) == _old_origin(shape, box, orientation, before)


def test_origin_of_a_resampled_grid_starts_from_the_small_grid():
    grid = Resample((40, 40, 40), (20, 20, 20), (2.0, 2.0, 2.0))
    pl = Placement((40, 40, 40), (grid, Crop((20, 20, 20), ((2, 12), (3, 20), (0, 20))), Reorient((10, 17, 20))))
    assert pl.origin() == ((0, 3, 2), (20, 20, 20))  # LPS: model axes (x, y, z) of the 2 mm grid


def test_to_dict_is_a_json_record_that_rebuilds_the_placement(variants):
    case = _read(variants["ras"], slices=12)  # the crop's margin is 4 voxels of the 2 mm grid
    x, pl = prepare(case, _spec(spacing=(2.0, 2.0, 2.0)))
    record = json.loads(json.dumps(pl.to_dict()))
    assert [s["kind"] for s in record["steps"]] == ["resample", "crop", "reorient", "pad"]
    again = Placement.from_dict(record)
    assert again == pl
    np.testing.assert_array_equal(again.restore(x), pl.restore(x))
    with pytest.raises(ValueError, match="unknown placement step"):
        Placement.from_dict({"case_shape": [1, 1, 1], "steps": [{"kind": "warp"}]})


def test_two_mm_model_grid_round_trip(real_crop_dir):
    """A 2 mm model on a 1 mm case: labels come back within one voxel, smooth maps within 0.02."""
    case = read_case(real_crop_dir)
    x, pl = prepare(case, _spec(spacing=(2.0, 2.0, 2.0), divisible_by=8))
    grid = pl.steps[0]
    assert isinstance(grid, Resample) and grid.to_shape == tuple(n // 2 for n in case.shape) and not pl.exact
    gt = case.ground_truth
    back = pl.restore(pl.forward(gt, labels=True), labels=True)
    assert back.shape == gt.shape and back.dtype == gt.dtype
    cube = np.ones((3, 3, 3), bool)
    for c in np.unique(back):  # a voxel labelled c that was not c lies within one voxel of a c voxel
        wrong = (back == c) & (gt != c)
        assert not (wrong & ~ndimage.binary_dilation(gt == c, cube)).any(), c
    wt, wt_back = gt > 0, back > 0
    assert 2 * (wt & wt_back).sum() / (wt.sum() + wt_back.sum()) > 0.9
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in case.shape], indexing="ij")
    centre = np.asarray(case.shape) / 2
    blob = np.exp(-((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) / (2 * 10.0 ** 2))
    prob = np.stack([blob, 1 - blob]).astype(np.float32)
    small = pl.forward(prob)
    assert small.shape == (2,) + pl.shape
    restored = pl.restore(small)
    inside = pl.crop_box  # on the 2 mm grid; restored on the 1 mm grid it covers twice the extent
    core = tuple(slice(2 * s.start + 2, 2 * s.stop - 2) for s in inside)
    assert np.abs(restored[(slice(None),) + core] - prob[(slice(None),) + core]).max() < 0.02


def test_steps_check_what_they_are_given():
    pl = Placement((4, 4, 4), (Crop((4, 4, 4), ((0, 2), (0, 4), (1, 3))),))
    with pytest.raises(ValueError, match="not on this placement's grid"):
        pl.restore(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="cannot follow"):
        pl.then(Pad((4, 4, 4), (1, 1, 1), (1, 1, 1)))
    per_channel = pl.restore(np.ones((2, 2, 4, 2), np.float32), fill=[0.0, 5.0])
    assert per_channel[1, 3, 0, 0] == 5.0 and per_channel[0, 3, 0, 0] == 0.0 and per_channel[1, 0, 0, 1] == 1.0
