"""Lesion-wise Dice and HD95 (BraTS 2023 rules): constructed multi-lesion maps with known answers, the
dilation and size rules at their boundaries, and a literal whole-image re-implementation of the
reference procedure (with MONAI's HD95) on real label maps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.io import read_labels
from napari_brats_seg.core.lesionwise import ground_truth_lesions, lesionwise_metrics
from napari_brats_seg.core.metrics import HD95_MAX_MM, compute_metrics


def _cube(m: np.ndarray, corner, size) -> None:
    m[tuple(slice(c, c + s) for c, s in zip(corner, np.broadcast_to(size, 3)))] = True


def test_missed_lesion_false_positive_and_small_lesion():
    gt = np.zeros((40, 40, 40), bool)
    pred = np.zeros_like(gt)
    _cube(gt, (5, 5, 5), 5)      # lesion A, 125 voxels: found exactly
    _cube(pred, (5, 5, 5), 5)
    _cube(gt, (25, 25, 25), 4)   # lesion B, 64 voxels: missed
    _cube(gt, (5, 28, 28), 3)    # lesion C, 27 voxels <= 50: not scored, its match is no FP
    _cube(pred, (5, 28, 28), 3)
    _cube(pred, (30, 5, 30), 4)  # a false-positive component
    r = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert (r["n_gt_lesions"], r["n_tp"], r["n_fn"], r["n_fp"], r["n_small"]) == (2, 1, 1, 1, 1)
    # Scored: A (Dice 1, HD95 0) and B (0, penalty); one FP (0, penalty) -> denominators 3.
    assert r["dice"] == pytest.approx(1 / 3)
    assert r["hd95"] == pytest.approx(2 * HD95_MAX_MM / 3)
    by_volume = {round(e["volume_ml"] * 1000): e for e in r["lesions"]}
    assert by_volume[125]["dice"] == 1.0 and by_volume[125]["hd95"] == 0.0
    assert by_volume[64]["n_components"] == 0 and by_volume[64]["hd95"] == HD95_MAX_MM
    assert by_volume[27]["scored"] is False and by_volume[27]["dice"] == 1.0
    # The reference's own penalty value can be asked for.
    assert lesionwise_metrics(pred, gt, (1, 1, 1), hd95_penalty=374)["hd95"] == pytest.approx(2 * 374 / 3)


@pytest.mark.parametrize("gap, n_expected", [(6, 1), (7, 2)])
def test_lesions_closer_than_the_dilation_merge(gap, n_expected):
    # Dilating 3 times reaches 3 voxels: a 6-voxel gap closes (the dilations touch), a 7-voxel gap
    # leaves one voxel between them.
    gt = np.zeros((12, 12, 30), bool)
    _cube(gt, (4, 4, 2), 4)
    _cube(gt, (4, 4, 6 + gap), 4)
    lesions, n = ground_truth_lesions(gt, dilation=3)
    assert n == n_expected
    assert set(np.unique(lesions[gt])) == set(range(1, n_expected + 1))
    assert not lesions[~gt].any()  # the ground truth itself is never dilated


def test_dilation_element_is_the_18_neighbourhood():
    # BraTS's generate_binary_structure(3, 2) has no corners. Two voxels 3 apart along all three axes:
    # a 3x3x3 (26) element would make their dilations touch at a corner (one lesion); the 18-element
    # leaves them apart. Along one axis the same distance merges them.
    gt = np.zeros((7, 7, 7), bool)
    gt[1, 1, 1] = gt[4, 4, 4] = True
    assert ground_truth_lesions(gt, dilation=1)[1] == 2
    gt2 = np.zeros((7, 7, 7), bool)
    gt2[1, 1, 1] = gt2[1, 1, 4] = True
    assert ground_truth_lesions(gt2, dilation=1)[1] == 1


def test_prediction_near_a_lesion_is_matched_not_a_false_positive():
    gt = np.zeros((30, 30, 30), bool)
    _cube(gt, (10, 10, 10), 6)
    pred = np.zeros_like(gt)
    _cube(pred, (10, 10, 18), 4)  # 2 voxels beyond the lesion: inside its 3-voxel dilation
    r = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert r["n_fp"] == 0 and r["n_tp"] == 1
    assert r["dice"] == 0.0  # matched, yet no overlap
    assert 0 < r["hd95"] < 15
    pred[:] = False
    _cube(pred, (10, 10, 20), 4)  # 4 voxels beyond: outside the dilation -> FP, lesion missed
    r = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert (r["n_fp"], r["n_fn"]) == (1, 1)
    assert r["hd95"] == pytest.approx(HD95_MAX_MM)


def test_components_are_26_connected_and_split_gt_lesions_share_one_match():
    pred = np.zeros((20, 20, 20), bool)
    _cube(pred, (2, 2, 2), 2)
    _cube(pred, (4, 4, 4), 2)  # touches the first cube only at a corner: one component
    gt = np.zeros_like(pred)
    r = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert r["n_fp"] == 1 and r["dice"] == 0.0 and r["hd95"] == HD95_MAX_MM
    # One predicted component bridging two far-apart lesions is matched to both (no FP).
    gt[:] = False
    _cube(gt, (8, 2, 2), 4)
    _cube(gt, (8, 14, 2), 4)
    pred[:] = False
    pred[9:11, 2:18, 3:5] = True
    r = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert (r["n_gt_lesions"], r["n_tp"], r["n_fp"]) == (2, 2, 0)


def test_volume_threshold_is_in_cubic_mm():
    gt = np.zeros((20, 20, 20), bool)
    _cube(gt, (5, 5, 5), (2, 3, 5))  # 30 voxels
    pred = np.zeros_like(gt)
    iso = lesionwise_metrics(pred, gt, (1, 1, 1))
    assert (iso["n_gt_lesions"], iso["n_small"], iso["dice"], iso["hd95"]) == (0, 1, 1.0, 0.0)
    aniso = lesionwise_metrics(pred, gt, (2, 1, 1))  # 60 mm^3 > 50: scored, and missed
    assert (aniso["n_gt_lesions"], aniso["n_fn"], aniso["dice"]) == (1, 1, 0.0)


def test_both_empty():
    z = np.zeros((8, 8, 8), bool)
    r = lesionwise_metrics(z, z, (1, 1, 1))
    assert (r["dice"], r["hd95"], r["n_gt_lesions"], r["n_fp"], r["lesions"]) == (1.0, 0.0, 0, 0, [])


# ------------------------------------------------------- literal reference procedure on real maps


def _reference(pred: np.ndarray, gt: np.ndarray, dil: int = 3, thresh: float = 50.0) -> tuple[float, float]:
    """Whole-image transcription of the BraTS 2023 steps (1 mm voxels), HD95 from MONAI."""
    s26, sdil = np.ones((3, 3, 3), bool), ndimage.generate_binary_structure(3, 2)
    pred_cc, _ = ndimage.label(pred, s26)
    dil_cc, n = ndimage.label(ndimage.binary_dilation(gt, sdil, iterations=dil), s26)
    combined = dil_cc * gt
    tp, rows = [], []
    for k in range(1, n + 1):
        g = combined == k
        ids = np.unique(pred_cc[ndimage.binary_dilation(g, sdil, iterations=dil)])
        ids = ids[ids != 0]
        tp.extend(ids.tolist())
        p = np.isin(pred_cc, ids) & (pred_cc > 0)
        dice = 2 * (p & g).sum() / (p.sum() + g.sum())
        if ids.size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hd = compute_hausdorff_distance(torch.from_numpy(p)[None, None].float(),
                                                torch.from_numpy(g)[None, None].float(),
                                                include_background=True, percentile=95).item()
        else:
            hd = HD95_MAX_MM
        rows.append((g.sum(), dice, hd))
    fp = np.setdiff1d(np.unique(pred_cc), tp + [0]).size
    kept = [r for r in rows if r[0] > thresh]
    if not kept and not fp:
        return 1.0, 0.0
    return (sum(r[1] for r in kept) / (len(kept) + fp),
            (sum(r[2] for r in kept) + fp * HD95_MAX_MM) / (len(kept) + fp))


@pytest.fixture(scope="module")
def real_pair(brats2018_dir, deepmedic_dir):
    """A real ground truth and the CaPTk DeepMedic reference prediction, cropped around the tumour."""
    case = "Brats18_2013_11_1"
    gt, _, _ = read_labels(brats2018_dir / case / f"{case}_seg.nii.gz")
    pred, _, _ = read_labels(deepmedic_dir / "reference_predictions" / f"{case}_deepmedic.nii.gz")
    box = ndimage.find_objects(((gt > 0) | (pred > 0)).astype(int))[0]
    box = tuple(slice(max(s.start - 5, 0), s.stop + 5) for s in box)
    return np.ascontiguousarray(pred[box]), np.ascontiguousarray(gt[box])


def test_matches_literal_reference_on_real_maps(real_pair):
    pred, gt = real_pair
    # The real prediction, and a copy with extra scattered false-positive blobs and a lesion removed.
    rng = np.random.default_rng(0)
    noisy = pred.copy()
    seeds = (rng.random(pred.shape) > 0.99995) & (gt == 0)
    noisy[ndimage.binary_dilation(seeds, iterations=1)] = lab.ENHANCING
    for p in (pred, noisy):
        ours = compute_metrics(p, gt, (1, 1, 1), lesionwise=True)["lesionwise"]
        pm, gm = lab.region_masks(p), lab.region_masks(gt)
        for region in lab.REGIONS:
            ref_dice, ref_hd = _reference(pm[region], gm[region])
            assert ours[region]["dice"] == pytest.approx(ref_dice, abs=1e-9), region
            assert ours[region]["hd95"] == pytest.approx(ref_hd, rel=1e-4), region
    assert compute_metrics(noisy, gt, (1, 1, 1), lesionwise=True)["lesionwise"]["ET"]["n_fp"] > 3


def test_real_ground_truth_against_itself(real_pair):
    _, gt = real_pair
    lw = compute_metrics(gt, gt, (1, 1, 1), lesionwise=True)["lesionwise"]
    for region in lab.REGIONS:
        assert lw[region]["dice"] == 1.0 and lw[region]["hd95"] == 0.0 and lw[region]["n_fp"] == 0
        assert lw[region]["n_gt_lesions"] >= 1
