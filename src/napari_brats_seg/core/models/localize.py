"""Tumour localisation per axial slice: contours as polygons, and slice classification.

The slice models of the project's sources report, besides the voxel labels, where the tumour is on
each axial slice (its outline) and which slices contain tumour at all. Both are derived here from
an internal-class label map ``(z, y, x)`` (axial slice = fixed ``z``), or, for slice
classification, from a small classifier head (:class:`SliceClassifier`) on the four channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..labels import REGION_CLASSES


def region_mask(labels: np.ndarray, region: str | Sequence[int] = "WT") -> np.ndarray:
    """Boolean mask of a region (``WT``, ``TC``, ``ET``) or of explicit internal classes."""
    classes = REGION_CLASSES[region] if isinstance(region, str) else tuple(region)
    return np.isin(np.asarray(labels), classes)


def slice_contours(labels: np.ndarray, region: str | Sequence[int] = "WT",
                   spacing: Sequence[float] | None = None) -> dict[int, list[np.ndarray]]:
    """Outlines of a region on every axial slice, as closed polygons.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    region
        ``WT``, ``TC``, ``ET`` or a sequence of internal classes.
    spacing
        ``(z, y, x)`` voxel size in mm: polygons in mm (from the array origin) instead of voxels.

    Returns
    -------
    dict
        Slice index ``z`` -> list of ``(n, 2)`` float arrays of ``(y, x)`` vertices (first vertex
        repeated last), one per connected outline (holes included), for slices with tumour only.
        Vertices lie half-way between voxel centres inside and outside the region
        (:func:`skimage.measure.find_contours` at level 0.5 on a zero-padded slice, so outlines
        touching the border close).
    """
    from skimage.measure import find_contours

    mask = region_mask(labels, region)
    scale = np.array([1.0, 1.0]) if spacing is None else np.asarray(spacing, float)[1:]
    out: dict[int, list[np.ndarray]] = {}
    for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        padded = np.pad(mask[z], 1).astype(np.float32)
        polys = [(c - 1.0) * scale for c in find_contours(padded, 0.5)]
        out[int(z)] = polys
    return out


def contours_as_shapes(contours: dict[int, list[np.ndarray]]) -> list[np.ndarray]:
    """Polygons ``(n, 3)`` with ``(z, y, x)`` vertices, e.g. for a napari Shapes layer."""
    return [np.column_stack([np.full(len(p), z, float), p]) for z, polys in sorted(contours.items()) for p in polys]


def slice_presence(labels: np.ndarray, region: str | Sequence[int] = "WT", min_voxels: int = 1) -> np.ndarray:
    """Per axial slice: True when at least ``min_voxels`` voxels of the region lie on it."""
    mask = region_mask(labels, region)
    return mask.reshape(mask.shape[0], -1).sum(axis=1) >= min_voxels


class SliceClassifier(nn.Module):
    """A small CNN telling whether an axial slice ``(N, C, H, W)`` contains tumour (one logit each).

    Strided convolutions with instance norm and leaky ReLU, then a global max pool (a small
    tumour anywhere counts) and a linear layer. Any slice size works.

    Parameters
    ----------
    in_channels
        MRI channels (4).
    features
        Channels of the strided blocks.
    """

    def __init__(self, in_channels: int = 4, features: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for f in features:
            layers += [nn.Conv2d(prev, f, 3, stride=2, padding=1), nn.InstanceNorm2d(f, affine=True),
                       nn.LeakyReLU(0.01, inplace=True)]
            prev = f
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit ``(N,)`` of tumour presence."""
        return self.head(self.body(x).amax(dim=(2, 3))).squeeze(1)
