"""Lesion-wise Dice and HD95 as the BraTS 2023 challenge ranks segmentations.

Our reading of the rules
------------------------
Source: the BraTS 2023 lesion-wise metrics of the challenge organisers (R. Saluja et al., public
repository ``rachitsaluja/BraTS-2023-Metrics``, ``brats_metrics.py``, ``get_lesion_wise_score`` and
``get_lesion_wise_results``), used by the BraTS 2023 and 2024 evaluation (Sage-Bionetworks-Challenges).
For one region (WT, TC or ET) of a prediction ``P`` and a ground truth ``G``:

1. **Ground-truth lesions.** ``G`` is dilated ``dilation`` times (3 for glioma, GLI/SSA/PED; 1 for
   MEN and MET) with ``scipy.ndimage.generate_binary_structure(3, 2)``. Note: that is the
   18-neighbourhood (faces and edges of the 3x3x3 cube, not its corners), which is what the reference
   code uses. The dilated mask is split into 26-connected components; each component's voxels of the
   *undilated* ``G`` form one lesion. Ground-truth lesions closer than the dilation therefore merge
   into one lesion, and ``G`` itself never changes.
2. **Prediction components.** ``P`` is split into 26-connected components.
3. **Matching.** Each lesion is dilated again the same way; every prediction component that touches
   this dilated lesion is matched to it (a component may match several lesions). The lesion's Dice and
   HD95 are computed between the lesion and the union of its matched components (whole components,
   also where they reach beyond the dilation). A lesion without a match (false negative) gets Dice 0
   and HD95 ``hd95_penalty``.
4. **Small lesions.** Lesions whose volume is at most ``min_lesion_volume_mm3`` (50 mm³ for glioma,
   i.e. 50 voxels at 1 mm; 2 mm³ for MET) are left out of the score, numerator and denominator alike;
   components matched to them are not false positives.
5. **False positives.** Prediction components that match no lesion (of any size) count once each with
   Dice 0 and HD95 ``hd95_penalty``.
6. **Score.** lesion-wise Dice = ``sum(lesion Dice) / (n_lesions + n_fp)``, lesion-wise HD95 =
   ``(sum(lesion HD95) + n_fp * penalty) / (n_lesions + n_fp)``; when the denominator is 0 (no
   countable lesion and no false positive) Dice is 1 and HD95 0, as in the reference.

Differences from the reference code, on purpose: HD95 is this project's MONAI-equivalent surface
HD95 (:func:`.surface.hausdorff95`) instead of DeepMind's area-weighted ``surface_distance``, and the
penalty is :data:`.surface.HD95_MAX_MM` (373.13 mm, the project's empty-mask value) where the reference
writes 374; pass ``hd95_penalty=374`` to reproduce it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .errors import CaseError
from .surface import HD95_MAX_MM, check_spacing, hausdorff95

#: 26-connectivity for connected components.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
#: The dilation element of the reference code: ``generate_binary_structure(3, 2)`` (18-neighbourhood).
DILATION_STRUCTURE = ndimage.generate_binary_structure(3, 2)
#: BraTS 2023 parameters per challenge: (dilation in voxels, minimum lesion volume in mm³).
CHALLENGE_PARAMETERS: dict[str, tuple[int, float]] = {
    "GLI": (3, 50.0), "SSA": (3, 50.0), "PED": (3, 50.0), "MEN": (1, 50.0), "MET": (1, 2.0),
}


def _grow(box: tuple[slice, ...], by: int, shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - by, 0), min(s.stop + by, n)) for s, n in zip(box, shape))


def _union(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    if iterations <= 0:
        return mask
    return ndimage.binary_dilation(mask, structure=DILATION_STRUCTURE, iterations=iterations)


def ground_truth_lesions(gt: np.ndarray, dilation: int = 3) -> tuple[np.ndarray, int]:
    """Label the ground-truth lesions, merging those whose dilations connect (rule 1).

    Returns
    -------
    lesions, n
        An int32 map, 0 outside ``gt`` and the lesion number (1..n) inside.
    """
    g = np.asarray(gt, dtype=bool)
    dil_cc, n = ndimage.label(_dilate(g, dilation), structure=CONNECTIVITY_26)
    return np.where(g, dil_cc, 0).astype(np.int32), int(n)


def lesionwise_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *, dilation: int = 3,
                       min_lesion_volume_mm3: float = 50.0, hd95_penalty: float = HD95_MAX_MM) -> dict:
    """BraTS 2023 lesion-wise Dice and HD95 of one region (see the module docstring for the rules).

    Parameters
    ----------
    pred, gt
        Boolean masks of one region, same ``(z, y, x)`` shape.
    spacing
        Voxel spacing in mm.
    dilation
        Ground-truth dilation in voxels (BraTS 2023 glioma: 3).
    min_lesion_volume_mm3
        Lesions of at most this volume are not scored (BraTS 2023 glioma: 50 mm³).
    hd95_penalty
        HD95 of a missed lesion or a false-positive component.

    Returns
    -------
    dict
        ``dice``, ``hd95`` (the lesion-wise scores); ``n_gt_lesions`` (scored lesions), ``n_tp`` and
        ``n_fn`` (scored lesions with / without a matched component), ``n_fp`` (unmatched prediction
        components), ``n_small`` (lesions left out for their size); ``lesions``: one entry per lesion
        with ``volume_ml``, ``dice``, ``hd95``, ``n_components`` (matched) and ``scored``.
    """
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if p.shape != g.shape or p.ndim != 3:
        raise CaseError(f"lesion-wise masks must be 3D and of one shape, got {p.shape} and {g.shape}")
    sp = check_spacing(spacing, 3)
    voxel_mm3 = float(np.prod(sp))
    dilation = max(int(dilation), 0)

    pred_cc, n_pred = ndimage.label(p, structure=CONNECTIVITY_26)
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)
    pred_boxes = ndimage.find_objects(pred_cc)
    lesions, n_les = ground_truth_lesions(g, dilation)
    les_boxes = ndimage.find_objects(lesions)

    matched_any: set[int] = set()
    entries: list[dict] = []
    for k in range(1, n_les + 1):
        box = _grow(les_boxes[k - 1], dilation, p.shape)
        lesion = lesions[box] == k
        n_vox = int(np.count_nonzero(lesion))
        local_cc = pred_cc[box]
        ids = np.unique(local_cc[_dilate(lesion, dilation)])
        ids = ids[ids != 0]
        matched_any.update(int(i) for i in ids)
        if ids.size:
            inter = int(np.count_nonzero(lesion & np.isin(local_cc, ids)))
            dice = 2.0 * inter / (n_vox + int(pred_sizes[ids].sum()))
            hbox = les_boxes[k - 1]
            for i in ids:
                hbox = _union(hbox, pred_boxes[int(i) - 1])
            hd = hausdorff95(np.isin(pred_cc[hbox], ids), lesions[hbox] == k, sp)
        else:
            dice, hd = 0.0, float(hd95_penalty)
        volume_mm3 = n_vox * voxel_mm3
        entries.append({"lesion": k, "volume_ml": volume_mm3 / 1000.0, "dice": float(dice), "hd95": float(hd),
                        "n_components": int(ids.size), "scored": bool(volume_mm3 > min_lesion_volume_mm3)})

    n_fp = n_pred - len(matched_any)
    scored = [e for e in entries if e["scored"]]
    denom = len(scored) + n_fp
    if denom == 0:
        dice_lw, hd_lw = 1.0, 0.0
    else:
        dice_lw = sum(e["dice"] for e in scored) / denom
        hd_lw = (sum(e["hd95"] for e in scored) + n_fp * float(hd95_penalty)) / denom
    n_tp = sum(1 for e in scored if e["n_components"] > 0)
    return {
        "dice": float(dice_lw), "hd95": float(hd_lw),
        "n_gt_lesions": len(scored), "n_tp": n_tp, "n_fn": len(scored) - n_tp, "n_fp": int(n_fp),
        "n_small": len(entries) - len(scored), "lesions": entries,
    }
