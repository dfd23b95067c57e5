"""Metrics: hand-computed values on tiny arrays, the empty-mask policy, and agreement with MONAI's
independent implementation on real BraTS label maps and perturbed copies of them.

Tolerances against MONAI: Dice, Jaccard, sensitivity and specificity agree to 1e-6 (MONAI computes
them in float32 from the same counts). HD95 agrees to 1e-4 relative: both take the surface as
``mask XOR binary_erosion(mask)`` (6-neighbourhood), Euclidean distances in mm to the other surface,
the larger of the two directed 95th percentiles with linear interpolation; MONAI keeps the distances
in float32 (KD-tree query) and we in float64, nothing else differs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_confusion_matrix_metric,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
    get_confusion_matrix,
)
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import CaseError, LabelSchemeError
from napari_brats_seg.core.io import read_labels
from napari_brats_seg.core.metrics import (
    HD95_MAX_MM,
    METRIC_KEYS,
    binary_metrics,
    compute_metrics,
    hausdorff95,
    surface_distances,
)


def _mask(shape, *points):
    m = np.zeros(shape, dtype=bool)
    for p in points:
        m[p] = True
    return m


# ---------------------------------------------------------------- hand-computed values


def test_two_single_voxels_anisotropic():
    # 1 x 1 x 4 image, spacing (z 2, y 3, x 0.5) mm: GT at x=0, prediction at x=2 -> 1 mm apart.
    gt, pred = _mask((1, 1, 4), (0, 0, 0)), _mask((1, 1, 4), (0, 0, 2))
    m = binary_metrics(pred, gt, (2.0, 3.0, 0.5))
    assert m["dice"] == 0.0 and m["jaccard"] == 0.0 and m["sensitivity"] == 0.0
    assert m["hd95"] == pytest.approx(1.0)
    # Negatives of the GT: 3 voxels, one of them predicted -> specificity 2/3.
    assert m["specificity"] == pytest.approx(2 / 3)
    # One voxel is 2 * 3 * 0.5 = 3 mm^3 = 0.003 mL.
    assert m["volume_pred_ml"] == pytest.approx(0.003) and m["volume_gt_ml"] == pytest.approx(0.003)


def test_partial_overlap_percentile_interpolates():
    # GT two voxels stacked along z (2 mm apart), prediction only the first: distances GT->pred are
    # [0, 2]; their 95th percentile with linear interpolation is 1.9; pred->GT is [0].
    gt = _mask((2, 1, 1), (0, 0, 0), (1, 0, 0))
    pred = _mask((2, 1, 1), (0, 0, 0))
    m = binary_metrics(pred, gt, (2.0, 1.0, 1.0))
    assert m["dice"] == pytest.approx(2 / 3)
    assert m["jaccard"] == pytest.approx(1 / 2)
    assert m["sensitivity"] == pytest.approx(1 / 2)
    assert m["specificity"] == 1.0  # no negatives in the image: nothing to misclassify
    assert m["hd95"] == pytest.approx(1.9)
    a, b = surface_distances(pred, gt, (2.0, 1.0, 1.0))
    assert sorted(a.tolist()) == [0.0] and sorted(b.tolist()) == [0.0, 2.0]


def test_surface_distance_uses_surfaces_not_volumes():
    # A 5x5x5 GT cube and the same cube shrunk by one voxel on every side, spacing z 2.5 mm, y/x 1 mm.
    gt = np.zeros((9, 9, 9), bool)
    gt[2:7, 2:7, 2:7] = True
    pred = np.zeros_like(gt)
    pred[3:6, 3:6, 3:6] = True
    sp = (2.5, 1.0, 1.0)
    a, b = surface_distances(pred, gt, sp)
    # The 26 surface voxels of the prediction (its centre is interior). Each lies 1 voxel inside a GT
    # face along y or x (1 mm) except the two z-face centres, whose nearest GT surface voxel is 2 voxels
    # away along y or x (2 mm) rather than 1 voxel along z (2.5 mm).
    assert a.size == 26
    assert sorted(a.tolist()) == pytest.approx([1.0] * 24 + [2.0] * 2)
    # GT surface (98 voxels) to the prediction surface: the z-faces' centres are 2.5 mm away.
    assert b.size == 125 - 27 and b.min() == pytest.approx(1.0)
    m = binary_metrics(pred, gt, sp)
    assert m["dice"] == pytest.approx(2 * 27 / (27 + 125))
    assert m["volume_gt_ml"] == pytest.approx(125 * 2.5 / 1000)


def test_identical_masks():
    gt = np.zeros((6, 7, 8), bool)
    gt[1:4, 2:5, 3:7] = True
    m = binary_metrics(gt, gt, (1.5, 0.8, 0.8))
    assert m["dice"] == m["jaccard"] == m["sensitivity"] == m["specificity"] == 1.0
    assert m["hd95"] == 0.0


@pytest.mark.parametrize("which", ["both", "pred", "gt"])
def test_empty_mask_policy(which):
    some = _mask((4, 4, 4), (1, 1, 1), (1, 1, 2))
    none = np.zeros((4, 4, 4), bool)
    pred, gt = {"both": (none, none), "pred": (none, some), "gt": (some, none)}[which]
    m = binary_metrics(pred, gt, (1.0, 1.0, 1.0))
    if which == "both":
        assert (m["dice"], m["hd95"], m["jaccard"], m["sensitivity"], m["specificity"]) == (1, 0, 1, 1, 1)
    else:
        assert m["dice"] == 0.0 and m["jaccard"] == 0.0 and m["sensitivity"] == 0.0
        assert m["hd95"] == HD95_MAX_MM == 373.13
    if which == "pred":
        assert m["specificity"] == 1.0
    if which == "gt":
        assert m["specificity"] == pytest.approx(62 / 64)
    assert hausdorff95(pred, gt, 1.0) == m["hd95"]


def test_hd95_max_is_the_brats_diagonal():
    assert pytest.approx(math.sqrt(240**2 + 240**2 + 155**2), abs=0.01) == HD95_MAX_MM


def test_compute_metrics_layout_and_labels():
    gt = np.zeros((10, 12, 14), np.uint8)
    gt[2:8, 3:9, 3:11] = lab.EDEMA
    gt[3:7, 4:8, 5:9] = lab.NECROTIC
    gt[4:6, 5:7, 6:8] = lab.ENHANCING
    pred = gt.copy()
    pred[pred == lab.NECROTIC] = lab.EDEMA  # NCR missed, read as edema
    m = compute_metrics(pred, gt, (2.0, 1.0, 1.0))
    assert set(m) == {"WT", "TC", "ET", "labels"}
    assert set(m["labels"]) == {"NCR", "ED", "ET"}
    for d in [m["WT"], m["TC"], m["ET"], *m["labels"].values()]:
        assert tuple(d) == METRIC_KEYS
    assert m["WT"]["dice"] == 1.0 and m["ET"]["dice"] == 1.0
    assert m["labels"]["NCR"]["dice"] == 0.0 and m["labels"]["NCR"]["hd95"] == HD95_MAX_MM
    n_tc, n_et = int(np.isin(gt, (1, 3)).sum()), int((gt == 3).sum())
    assert m["TC"]["dice"] == pytest.approx(2 * n_et / (n_tc + n_et))
    assert m["labels"]["ET"] == m["ET"]
    assert m["WT"]["volume_gt_ml"] == pytest.approx(int((gt > 0).sum()) * 2.0 / 1000)
    # A resection cavity (internal class 4) adds an RC label entry, and belongs to no region.
    pred[0, 0, 0] = lab.RESECTION
    m2 = compute_metrics(pred, gt, (2.0, 1.0, 1.0))
    assert "RC" in m2["labels"] and m2["labels"]["RC"]["dice"] == 0.0
    assert m2["WT"] == m["WT"]


def test_compute_metrics_rejects_bad_input():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(CaseError, match="shape"):
        compute_metrics(a, np.zeros((4, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(LabelSchemeError, match=r"\[7\]"):
        compute_metrics(a + 7, a, (1, 1, 1))
    with pytest.raises(CaseError, match="spacing"):
        compute_metrics(a, a, (1, 0, 1))
    with pytest.raises(CaseError, match="3D"):
        compute_metrics(a[0], a[0], (1, 1))


# ---------------------------------------------------------------- agreement with MONAI


def _monai(pred: np.ndarray, gt: np.ndarray, spacing) -> dict[str, float]:
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm = get_confusion_matrix(p, g, include_background=True)
        return {
            "dice": compute_dice(p, g, include_background=True).item(),
            "jaccard": compute_iou(p, g, include_background=True).item(),
            "hd95": compute_hausdorff_distance(p, g, include_background=True, percentile=95,
                                               spacing=list(spacing)).item(),
            "sensitivity": compute_confusion_matrix_metric("sensitivity", cm).item(),
            "specificity": compute_confusion_matrix_metric("specificity", cm).item(),
        }


def _perturb(gt: np.ndarray, kind: str) -> np.ndarray:
    wt = gt > 0
    if kind == "eroded":
        return np.where(ndimage.binary_erosion(wt, iterations=2), gt, 0).astype(np.uint8)
    if kind == "dilated":
        grown = ndimage.binary_dilation(wt, iterations=3)
        return np.where(grown & ~wt, lab.EDEMA, gt).astype(np.uint8)
    if kind == "shifted":
        return np.roll(gt, (2, -3, 4), axis=(0, 1, 2))
    if kind == "swapped":  # NCR <-> ET
        out = gt.copy()
        out[gt == lab.NECROTIC], out[gt == lab.ENHANCING] = lab.ENHANCING, lab.NECROTIC
        return out
    if kind == "et_emptied":  # enhancing tumour predicted as necrotic: the ET region is empty
        return np.where(gt == lab.ENHANCING, lab.NECROTIC, gt).astype(np.uint8)
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def real_gts(brats2018_dir):
    """Two real ground truths cropped to their tumour (+12 voxels): a high-grade and a low-grade case."""
    out = {}
    for case in ("Brats18_2013_11_1", "Brats18_TCIA10_628_1"):
        gt, scheme, _ = read_labels(brats2018_dir / case / f"{case}_seg.nii.gz")
        assert scheme.name == "brats2021"
        box = tuple(slice(max(s.start - 12, 0), s.stop + 12) for s in ndimage.find_objects((gt > 0).astype(int))[0])
        out[case] = np.ascontiguousarray(gt[box])
    return out


@pytest.mark.parametrize("kind", ["eroded", "dilated", "shifted", "swapped", "et_emptied"])
def test_agrees_with_monai_on_real_maps(real_gts, kind):
    spacing = (2.5, 1.0, 0.8)  # anisotropic on purpose: distances must honour it
    for case, gt in real_gts.items():
        pred = _perturb(gt, kind)
        ours = compute_metrics(pred, gt, spacing)
        pm, gm = lab.region_masks(pred), lab.region_masks(gt)
        for region in lab.REGIONS:
            o = ours[region]
            p, g = pm[region], gm[region]
            if not g.any() or not p.any():  # MONAI has no BraTS policy here: check ours directly
                assert o["dice"] == (1.0 if not (g.any() or p.any()) else 0.0), (case, kind, region)
                assert o["hd95"] == (0.0 if not (g.any() or p.any()) else HD95_MAX_MM)
                continue
            ref = _monai(p, g, spacing)
            for key in ("dice", "jaccard", "sensitivity", "specificity"):
                assert o[key] == pytest.approx(ref[key], abs=1e-6), (case, kind, region, key)
            assert o["hd95"] == pytest.approx(ref["hd95"], rel=1e-4, abs=1e-4), (case, kind, region)
            vox = 2.5 * 1.0 * 0.8 / 1000
            assert o["volume_pred_ml"] == pytest.approx(p.sum() * vox)
            assert o["volume_gt_ml"] == pytest.approx(g.sum() * vox)


def test_real_perturbations_move_the_scores_the_right_way(real_gts):
    gt = real_gts["Brats18_2013_11_1"]
    same = compute_metrics(gt, gt, (1, 1, 1))
    assert all(same[r]["dice"] == 1.0 and same[r]["hd95"] == 0.0 for r in lab.REGIONS)
    eroded = compute_metrics(_perturb(gt, "eroded"), gt, (1, 1, 1))
    assert eroded["WT"]["sensitivity"] < 1.0 and eroded["WT"]["specificity"] == 1.0
    dilated = compute_metrics(_perturb(gt, "dilated"), gt, (1, 1, 1))
    assert dilated["WT"]["sensitivity"] == 1.0 and dilated["WT"]["specificity"] < 1.0
    assert dilated["TC"]["dice"] == 1.0  # only edema was added
    swapped = compute_metrics(_perturb(gt, "swapped"), gt, (1, 1, 1))
    assert swapped["WT"]["dice"] == 1.0 and swapped["TC"]["dice"] == 1.0 and swapped["ET"]["dice"] < 0.5
    emptied = compute_metrics(_perturb(gt, "et_emptied"), gt, (1, 1, 1))
    assert emptied["ET"]["dice"] == 0.0 and emptied["ET"]["hd95"] == HD95_MAX_MM
    assert emptied["ET"]["volume_pred_ml"] == 0.0


def test_mask_touching_the_image_border_agrees_with_monai():
    # The crop before the distance transform must not change surfaces at the image border.
    rng = np.random.default_rng(3)
    g = ndimage.binary_dilation(rng.random((20, 24, 18)) > 0.985, iterations=2)
    p = np.roll(g, 1, axis=2)
    g[0, :, :5] = True
    p[:, -1, :] = True
    ours = binary_metrics(p, g, (1.0, 0.7, 2.0))
    ref = _monai(p, g, (1.0, 0.7, 2.0))
    assert ours["hd95"] == pytest.approx(ref["hd95"], rel=1e-4)
    assert ours["dice"] == pytest.approx(ref["dice"], abs=1e-6)


def test_two_empty_maps_score_perfect_everywhere():
    z = np.zeros((5, 6, 7), np.uint8)
    m = compute_metrics(z, z, (1.0, 1.0, 3.0), lesionwise=True)
    for d in [m["WT"], m["TC"], m["ET"], *m["labels"].values()]:
        assert (d["dice"], d["hd95"], d["volume_pred_ml"], d["volume_gt_ml"]) == (1.0, 0.0, 0.0, 0.0)
    assert all(m["lesionwise"][r]["dice"] == 1.0 and m["lesionwise"][r]["hd95"] == 0.0 for r in lab.REGIONS)
