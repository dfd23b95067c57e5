"""Validation during training: each case predicted as ``predict`` does, scored on the case's own grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import BratsSegError
from ..labels import region_masks
from ..models.spec import ModelSpec
from ..progress import CancelToken, check
from . import data as ds

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (the BraTS convention)."""
    a, b = int(pred.sum()), int(gt.sum())
    if a + b == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / (a + b)


def predict_sample(network: torch.nn.Module, spec: ModelSpec, sample: ds.Sample, device: torch.device,
                   cancel: CancelToken | None = None) -> np.ndarray:
    """Labels of a prepared case on its own grid, the way :func:`~napari_brats_seg.core.inference.predict` makes them
    (padding, windows, overlap, restore, one decode; fp32, no TTA, no clean-up)."""
    from ..inference import run_network, to_case_grid
    from ..placement import pad_input

    if sample.placement is None:
        raise BratsSegError(f"sample {sample.case_id} has no placement (made by data.prepare_case)")
    x, placement = pad_input(sample.image, sample.placement, spec, self_tiling=spec.self_tiling)
    out = run_network(network, spec, x, placement, device=device, precision="fp32", cancel=cancel,
                      what=f"validation case {sample.case_id}")
    return to_case_grid(out, placement, spec)[0]


def case_dice(labels: np.ndarray, sample: ds.Sample) -> dict[str, float]:
    """Dice per region of case-grid ``labels`` against the sample's ground truth (background outside
    its ``truth_box``)."""
    if sample.truth is None:
        raise BratsSegError(f"sample {sample.case_id} kept no ground truth (load_samples(keep_truth=True))")
    pred, truth = region_masks(labels), region_masks(sample.truth)
    out = {}
    for r in ("WT", "TC", "ET"):
        a, b = int(pred[r].sum()), int(truth[r].sum())
        both = int(np.logical_and(pred[r][sample.truth_box], truth[r]).sum())
        out[r] = round(1.0 if a + b == 0 else 2.0 * both / (a + b), 4)
    return out


def validate(network: torch.nn.Module, spec: ModelSpec, samples: Sequence[ds.Sample],
             config: TrainConfig, cancel: CancelToken | None = None) -> dict:
    """Dice per region on each validation case, predicted as :func:`~napari_brats_seg.core.inference.predict` does and
    scored on the case's own grid.

    Returns ``{"cases": {id: {region: dice}}, "mean": {region: dice}}``.
    """
    was_training = network.training
    network.eval()
    per: dict[str, dict[str, float]] = {}
    try:
        for s in samples:
            check(cancel)
            per[s.case_id] = case_dice(predict_sample(network, spec, s, torch.device(config.device), cancel), s)
    finally:
        network.train(was_training)
    mean = {r: float(np.mean([c[r] for c in per.values()])) for r in ("WT", "TC", "ET")}
    return {"cases": per, "mean": mean}
