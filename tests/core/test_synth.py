"""Synthetic cases: deterministic, MRI-like contrasts, every layout and orientation readable back."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brats_seg.core import io, synth
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.case import MODALITIES
from napari_brats_seg.core.errors import CaseError, OutputExistsError

SMALL = (40, 36, 32)  # x, y, z


@pytest.fixture(scope="module")
def case():
    return synth.synth_case(3, (64, 64, 48))


def test_deterministic_per_seed() -> None:
    a, b, c = synth.synth_case(5, SMALL), synth.synth_case(5, SMALL), synth.synth_case(6, SMALL)
    for m in MODALITIES:
        np.testing.assert_array_equal(a.images[m], b.images[m])
    np.testing.assert_array_equal(a.ground_truth, b.ground_truth)
    assert not np.array_equal(a.ground_truth, c.ground_truth)
    assert not np.array_equal(a.images["t1"], c.images["t1"])


def test_case_layout_and_geometry(case) -> None:
    assert case.case_id == "synth-3" and case.layout == "synth"
    assert case.shape == (48, 64, 64)  # internal (z, y, x) of file shape (64, 64, 48)
    assert case.spacing == (1.0, 1.0, 1.0)
    assert case.geometry.axcodes == ("L", "P", "S") and not case.geometry.is_oblique
    assert case.ground_truth.dtype == np.uint8 and case.ground_truth.shape == case.shape
    assert synth.synth_case(0, SMALL, case_id="mine").case_id == "mine"


def test_images_are_skull_stripped_int16(case) -> None:
    brain = case.images["t1"] > 0
    assert 0.1 < brain.mean() < 0.6
    for m in MODALITIES:
        img = case.images[m]
        assert img.dtype == np.float32
        np.testing.assert_array_equal(img, np.round(img))
        assert img.max() <= np.iinfo(np.int16).max
        np.testing.assert_array_equal(img > 0, brain)  # zero outside the brain, >= 1 inside
    gt = case.ground_truth
    assert set(np.unique(gt)) == {0, 1, 2, 3}
    assert not np.any(gt[~brain])
    masks = lab.region_masks(gt)
    assert masks["WT"].sum() > masks["TC"].sum() > masks["ET"].sum() > 0


def test_contrasts_follow_real_mri(case) -> None:
    gt = case.ground_truth
    tissue, _ = synth._anatomy(np.random.default_rng(3), case.shape)  # the first draw of synth_case(3)
    healthy = gt == 0

    def mean(mod: str, mask: np.ndarray) -> float:
        return float(case.images[mod][mask].mean())

    csf, gm, wm = ((tissue == t) & healthy for t in (synth._CSF, synth._GM, synth._WM))
    assert min(csf.sum(), gm.sum(), wm.sum()) > 500
    assert mean("t1", wm) > mean("t1", gm) > mean("t1", csf)  # T1: WM > GM > CSF
    assert mean("t2", csf) > mean("t2", gm) > mean("t2", wm)  # T2: CSF bright
    assert mean("flair", csf) < mean("flair", wm)  # FLAIR: CSF dark ...
    brain = tissue > 0
    ncr, ed, et = (gt == c for c in (lab.NECROTIC, lab.EDEMA, lab.ENHANCING))
    assert mean("flair", ed) > mean("flair", brain & healthy) * 1.3  # ... edema bright
    assert mean("t2", ed) > mean("t2", wm)
    assert mean("t1ce", et) > mean("t1ce", wm) * 1.2  # enhancing rim bright on T1ce
    assert mean("t1ce", ncr) < mean("t1ce", et) * 0.5  # necrotic core dark


def test_noise_and_bias_field(case) -> None:
    wm_flat = case.images["t1"][case.ground_truth == 0]
    wm_flat = wm_flat[wm_flat > np.percentile(wm_flat, 60)]
    assert wm_flat.std() > 0.01 * wm_flat.mean()  # noisy, not piecewise constant
    # a smooth bias: the brain's mean T1 differs between its left and right halves
    t1 = case.images["t1"]
    half = t1.shape[2] // 2
    left, right = t1[..., :half], t1[..., half:]
    assert abs(left[left > 0].mean() - right[right > 0].mean()) > 1.0


def test_tumours_vary_in_size_and_position() -> None:
    sizes, centres = [], []
    for seed in range(6):
        gt = synth.synth_case(seed, (48, 48, 40)).ground_truth
        idx = np.argwhere(gt == lab.ENHANCING)
        sizes.append(int((gt > 0).sum()))
        centres.append(idx.mean(0))
    assert max(sizes) > 1.5 * min(sizes)
    assert np.ptp(np.array(centres), axis=0).max() > 8


def test_bad_shape_is_refused() -> None:
    with pytest.raises(CaseError, match="three sizes >= 16"):
        synth.synth_case(0, (8, 32, 32))
    with pytest.raises(CaseError, match="three sizes"):
        synth.synth_case(0, (32, 32))


@pytest.mark.parametrize("layout", synth.LAYOUTS)
@pytest.mark.parametrize("orientation", synth.ORIENTATIONS)
def test_write_cases_read_back_identically(layout: str, orientation: str, tmp_path: Path) -> None:
    paths = synth.write_cases(tmp_path, 1, 7, layout=layout, shape=SMALL, orientation=orientation)
    assert len(paths) == 1
    case = io.read_case(paths[0])
    ref = synth.synth_case(synth.case_seed(7, 0), SMALL)
    assert case.layout == layout and case.gt_scheme is not None and case.gt_scheme.name == layout
    for m in MODALITIES:
        np.testing.assert_array_equal(case.images[m], ref.images[m], err_msg=m)
    np.testing.assert_array_equal(case.ground_truth, ref.ground_truth)
    expected_codes = {"LPS": ("L", "P", "S"), "RAS": ("R", "A", "S"), "oblique": ("L", "P", "S")}[orientation]
    assert case.geometry.axcodes == expected_codes
    assert case.geometry.is_oblique == (orientation == "oblique")
    # the file stores the layout's own label values, in uint8
    seg = nib.load(str(case.gt_path))
    assert seg.get_data_dtype() == np.uint8
    stored = {"brats2021": {0, 1, 2, 4}, "brats2023": {0, 1, 2, 3}, "msd": {0, 1, 2, 3}}[layout]
    assert lab.unique_values(np.asarray(seg.dataobj)) == stored
    if layout == "msd":
        assert paths[0].parent.name == "imagesTr" and nib.load(str(paths[0])).shape == SMALL + (4,)
        meta = json.loads((tmp_path / "dataset.json").read_text())
        assert meta["numTraining"] == 1 and meta["modality"]["0"] == "FLAIR"
    else:
        t1 = nib.load(str(case.sources["t1"]))
        assert t1.get_data_dtype() == np.int16 and t1.shape == SMALL


def test_write_cases_many_distinct_and_no_overwrite(tmp_path: Path) -> None:
    paths = synth.write_cases(tmp_path, 3, 2, shape=SMALL)
    assert [p.name for p in paths] == ["Synth2_000", "Synth2_001", "Synth2_002"]
    assert io.find_cases([tmp_path]) == paths
    gts = [io.read_case(p).ground_truth for p in paths]
    assert not np.array_equal(gts[0], gts[1])
    with pytest.raises(OutputExistsError, match="exists"):
        synth.write_cases(tmp_path, 1, 2, shape=SMALL)
    assert synth.write_cases(tmp_path, 1, 2, shape=SMALL, overwrite=True) == paths[:1]
    # sets of different seeds do not share cases
    assert {synth.case_seed(0, i) for i in range(50)}.isdisjoint({synth.case_seed(1, i) for i in range(50)})


def test_write_cases_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="unknown layout 'nnunet'"):
        synth.write_cases(tmp_path, 1, 0, layout="nnunet")
    with pytest.raises(CaseError, match="unknown orientation 'XYZ'"):
        synth.write_cases(tmp_path, 1, 0, orientation="XYZ")
    with pytest.raises(CaseError, match=">= 0"):
        synth.write_cases(tmp_path, 1, -1)
    assert list(tmp_path.iterdir()) == []


def test_synth_imports_no_torch_or_gui() -> None:
    import subprocess
    import sys

    code = ("import sys, napari_brats_seg.core.synth, napari_brats_seg.commands.synth\n"
            "print(','.join(m for m in ('torch', 'napari', 'qtpy', 'PyQt6') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
