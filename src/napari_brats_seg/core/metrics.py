"""Segmentation metrics as the BraTS challenge computes them: Dice, HD95, sensitivity, specificity,
Jaccard and volumes, per region (WT, TC, ET) and per label (NCR, ED, ET), plus lesion-wise scores.

Inputs are **internal-class** label maps (0 background, 1 NCR, 2 ED, 3 ET, 4 resection cavity; see
:mod:`.labels`) of the same ``(z, y, x)`` shape, and the voxel spacing ``(z, y, x)`` in mm. Region
masks come from :func:`.labels.region_masks`.

Definitions (``P`` prediction mask, ``G`` ground-truth mask, counts over the whole image)
------------------------------------------------------------------------------------------
- Dice ``2|P∩G| / (|P|+|G|)``; Jaccard ``|P∩G| / |P∪G|``.
- Sensitivity ``TP / (TP+FN)``; specificity ``TN / (TN+FP)``, the negatives being every other voxel of
  the image (as BraTS computes it on the full 240x240x155 grid).
- Volumes in mL: voxel count times the voxel volume ``prod(spacing) / 1000``.
- HD95 (mm): the surface of a mask is its voxels with a 6-neighbour outside it (``mask XOR
  binary_erosion(mask)``, the image border counting as outside). For every surface voxel of ``P`` the
  Euclidean distance, in mm with the anisotropic ``spacing``, to the nearest surface voxel of ``G`` is
  taken, and the other way round; HD95 is the larger of the two directed 95th percentiles (linear
  interpolation). This is exactly MONAI's ``compute_hausdorff_distance(..., percentile=95,
  spacing=...)`` (``get_mask_edges`` + ``get_surface_distance``); the tests check the agreement on real
  BraTS label maps. The official BraTS 2023 scripts use DeepMind's ``surface_distance`` package, which
  weights surface elements by their area; on BraTS tumours the two differ by a fraction of a voxel.

Empty-mask policy (BraTS)
-------------------------
============================  ======  ======  ========  ===========  ===========
case                          Dice    HD95    Jaccard   sensitivity  specificity
============================  ======  ======  ========  ===========  ===========
both masks empty              1       0       1         1            1
ground truth empty only       0       373.13  0         0            TN/(TN+FP)
prediction empty only         0       373.13  0         0            1
============================  ======  ======  ========  ===========  ===========

373.13 mm is the diagonal of the 240x240x155 mm BraTS volume, ``sqrt(240²+240²+155²)``, the value the
BraTS 2021 evaluation gives an undefined HD95 (:data:`HD95_MAX_MM`). Specificity whose denominator is 0
(a ground truth that fills the image) is 1. Sensitivity with an empty ground truth and a non-empty
prediction is 0, as in the BraTS 2023 scripts.

Speed: the class confusion matrix comes from one ``bincount`` over the image; distances are computed on
the union's bounding box plus one voxel only (a 240x240x155 case scores in well under a second per
region).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import labels as lab
from .errors import CaseError, LabelSchemeError

# the surface-distance primitives live in .surface (shared with .lesionwise); re-exported here
from .surface import HD95_MAX_MM, bounding_box, check_spacing, hausdorff95, surface, surface_distances

#: The keys of every per-region / per-label result, in table order.
METRIC_KEYS = ("dice", "hd95", "sensitivity", "specificity", "jaccard", "volume_pred_ml", "volume_gt_ml")
#: Per-label entries of :func:`compute_metrics`: short name -> internal class.
LABEL_CLASSES: dict[str, int] = {"NCR": lab.NECROTIC, "ED": lab.EDEMA, "ET": lab.ENHANCING}
_N_CLASSES = 5  # internal classes 0..4


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Dice, Jaccard, sensitivity and specificity from voxel counts, with the BraTS empty-mask policy."""
    tp, fp, fn, tn = (int(v) for v in (tp, fp, fn, tn))
    n_pred, n_gt = tp + fp, tp + fn
    if n_pred == 0 and n_gt == 0:
        return {"dice": 1.0, "jaccard": 1.0, "sensitivity": 1.0, "specificity": 1.0}
    return {
        "dice": 2.0 * tp / (n_pred + n_gt),
        "jaccard": tp / (tp + fp + fn),
        "sensitivity": tp / n_gt if n_gt else 0.0,
        "specificity": tn / (tn + fp) if (tn + fp) else 1.0,
    }


def binary_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Every metric of :data:`METRIC_KEYS` for one pair of boolean masks.

    Parameters
    ----------
    pred, gt
        Boolean masks of the same shape.
    spacing
        Voxel spacing in mm along the masks' axes (one number for isotropic voxels).
    """
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise CaseError(f"masks differ in shape: {p.shape} and {g.shape}")
    sp = check_spacing(spacing, p.ndim)
    tp = int(np.count_nonzero(p & g))
    n_p, n_g = int(np.count_nonzero(p)), int(np.count_nonzero(g))
    return _assemble(tp, n_p - tp, n_g - tp, p.size - n_p - n_g + tp, hausdorff95(p, g, sp), sp)


def _assemble(tp: int, fp: int, fn: int, tn: int, hd: float, spacing: Sequence[float]) -> dict[str, float]:
    voxel_mm3 = float(np.prod(spacing))
    s = scores_from_counts(tp, fp, fn, tn)
    out = {"dice": s["dice"], "hd95": hd, "sensitivity": s["sensitivity"], "specificity": s["specificity"],
           "jaccard": s["jaccard"], "volume_pred_ml": (tp + fp) * voxel_mm3 / 1000.0,
           "volume_gt_ml": (tp + fn) * voxel_mm3 / 1000.0}
    return {k: float(out[k]) for k in METRIC_KEYS}


def _as_internal(arr: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3:
        raise CaseError(f"{name} label map must be 3D (z, y, x), got shape {a.shape}")
    if a.dtype == np.uint8:
        bad = a.max(initial=0) >= _N_CLASSES
    else:
        if a.dtype.kind not in "iub":
            raise LabelSchemeError(f"{name} label map must hold integers, got {a.dtype}")
        bad = a.size and (a.min() < 0 or a.max() >= _N_CLASSES)
    if bad:
        vals = sorted(lab.unique_values(a) - set(range(_N_CLASSES)))
        raise LabelSchemeError(f"{name} label map holds values {vals} that are no internal class (0-4); "
                               "convert file labels with core.labels.to_internal first")
    return a.astype(np.uint8, copy=False)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(5, 5)`` voxel counts ``C[p, g]`` of prediction class ``p`` against ground-truth class ``g``."""
    p, g = _as_internal(pred, "prediction"), _as_internal(gt, "ground-truth")
    idx = p.ravel().astype(np.intp) * _N_CLASSES + g.ravel()
    return np.bincount(idx, minlength=_N_CLASSES ** 2).reshape(_N_CLASSES, _N_CLASSES)


def _counts(cm: np.ndarray, classes: Sequence[int]) -> tuple[int, int, int, int]:
    sel = np.zeros(_N_CLASSES, dtype=bool)
    sel[list(classes)] = True
    tp = int(cm[np.ix_(sel, sel)].sum())
    fp = int(cm[np.ix_(sel, ~sel)].sum())
    fn = int(cm[np.ix_(~sel, sel)].sum())
    tn = int(cm[np.ix_(~sel, ~sel)].sum())
    return tp, fp, fn, tn


def compute_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *, lesionwise: bool = False,
                    lesion_dilation: int = 3, min_lesion_volume_mm3: float = 50.0) -> dict:
    """Score an internal-class prediction against the ground truth, per region and per label.

    Parameters
    ----------
    pred, gt
        Internal-class label maps (0-4), ``(z, y, x)``, same shape.
    spacing
        Voxel spacing ``(z, y, x)`` in mm.
    lesionwise
        Add the BraTS 2023 lesion-wise Dice and HD95 of WT, TC and ET
        (:func:`.lesionwise.lesionwise_metrics`).
    lesion_dilation, min_lesion_volume_mm3
        The lesion-wise parameters (BraTS 2023 glioma: 3 voxels, 50 mm³).

    Returns
    -------
    dict
        ``{"WT": {...}, "TC": {...}, "ET": {...}, "labels": {"NCR": {...}, "ED": {...}, "ET": {...}}}``,
        each inner dict holding :data:`METRIC_KEYS`; ``labels`` also holds ``"RC"`` when either map has a
        resection cavity. With ``lesionwise``, a ``"lesionwise"`` entry maps WT/TC/ET to
        :func:`.lesionwise.lesionwise_metrics` results.

    Raises
    ------
    CaseError
        Shapes differ, or the spacing is not three positive numbers.
    LabelSchemeError
        A map holds values that are no internal class.
    """
    p, g = _as_internal(pred, "prediction"), _as_internal(gt, "ground-truth")
    if p.shape != g.shape:
        raise CaseError(f"prediction shape {p.shape} differs from ground-truth shape {g.shape}")
    sp = check_spacing(spacing, 3)
    cm = confusion_matrix(p, g)
    # Every distance needs only the tumour's bounding box (+1 voxel so erosion sees the outside).
    box = bounding_box((p > 0) | (g > 0), margin=1)
    pc = p[box] if box is not None else p[:1, :1, :1] * 0
    gc = g[box] if box is not None else g[:1, :1, :1] * 0

    def one(classes: Sequence[int]) -> dict[str, float]:
        tp, fp, fn, tn = _counts(cm, classes)
        hd = hausdorff95(np.isin(pc, classes), np.isin(gc, classes), sp)
        return _assemble(tp, fp, fn, tn, hd, sp)

    out: dict = {r: one(lab.REGION_CLASSES[r]) for r in lab.REGIONS}
    labels = {name: (dict(out["ET"]) if c == lab.ENHANCING else one((c,))) for name, c in LABEL_CLASSES.items()}
    if cm[lab.RESECTION, :].sum() or cm[:, lab.RESECTION].sum():
        labels["RC"] = one((lab.RESECTION,))
    out["labels"] = labels
    if lesionwise:
        from .lesionwise import lesionwise_metrics

        # Lesion matching dilates the ground truth: keep that many voxels around the tumour.
        lbox = bounding_box((p > 0) | (g > 0), margin=max(int(lesion_dilation), 0) + 1)
        pm = lab.region_masks(p[lbox] if lbox is not None else pc)
        gm = lab.region_masks(g[lbox] if lbox is not None else gc)
        out["lesionwise"] = {
            r: lesionwise_metrics(pm[r], gm[r], sp, dilation=lesion_dilation,
                                  min_lesion_volume_mm3=min_lesion_volume_mm3)
            for r in lab.REGIONS
        }
    return out


__all__ = ["HD95_MAX_MM", "LABEL_CLASSES", "METRIC_KEYS", "binary_metrics", "bounding_box", "check_spacing",
           "compute_metrics", "confusion_matrix", "hausdorff95", "scores_from_counts", "surface", "surface_distances"]
