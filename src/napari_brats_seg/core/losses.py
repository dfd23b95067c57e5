"""Training losses: Dice + BCE for region outputs, Dice + (weighted) cross-entropy for label outputs.

Region outputs (one sigmoid channel per region, e.g. WT/TC/ET) use MONAI's ``DiceLoss(sigmoid=True)``
plus ``BCEWithLogitsLoss``; label outputs (one softmax channel per class) use MONAI's ``DiceCELoss``.
The cascade (Havaei et al. 2017) is trained with cross-entropy weighted by inverse class frequency,
which is what their balanced patch sampling amounts to; :func:`class_weights` computes the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class DiceBCELoss(nn.Module):
    """Soft Dice (batch-wise, sigmoid) plus binary cross-entropy on logits ``(N, R, ...)``."""

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
        self.bce = nn.BCEWithLogitsLoss()
        self.wd, self.wb = dice_weight, bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return self.wd * self.dice(logits, target) + self.wb * self.bce(logits, target)


class DiceCELabelLoss(nn.Module):
    """Soft Dice (softmax) plus cross-entropy on logits ``(N, K, ...)`` and targets ``(N, 1, ...)``.

    Parameters
    ----------
    weight
        Per-class cross-entropy weights (None: unweighted).
    dice_weight
        Weight of the Dice term (0 gives pure weighted cross-entropy, as the cascade was trained).
    """

    def __init__(self, weight: Sequence[float] | None = None, dice_weight: float = 1.0) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
        w = torch.tensor(list(weight), dtype=torch.float32) if weight is not None else None
        self.ce = nn.CrossEntropyLoss(weight=w)
        self.wd = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = self.ce(logits, target[:, 0].long())
        if self.wd:
            loss = loss + self.wd * self.dice(logits, target)
        return loss


def class_weights(labels: Sequence[np.ndarray], n_classes: int, power: float = 0.5) -> list[float]:
    """Inverse-frequency class weights ``(1 / f_c) ** power``, normalised to mean 1.

    Classes absent from every map get the largest weight of the present ones.
    """
    counts = np.zeros(n_classes, np.float64)
    for lab in labels:
        counts += np.bincount(np.asarray(lab).ravel(), minlength=n_classes)[:n_classes]
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = (counts[present].sum() / counts[present]) ** power
    if (~present).any():
        w[~present] = w[present].max() if present.any() else 1.0
    return list(w / w.mean())


def build_loss(output: str, *, weights: Sequence[float] | None = None, dice_weight: float = 1.0) -> nn.Module:
    """The loss for a model's output kind (``"regions"`` or ``"labels"``)."""
    if output == "regions":
        return DiceBCELoss(dice_weight=dice_weight)
    if output == "labels":
        return DiceCELabelLoss(weights, dice_weight=dice_weight)
    raise ValueError(f"unknown output kind {output!r}; expected 'regions' or 'labels'")
