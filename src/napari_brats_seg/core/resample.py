"""Resampling between voxel spacings: the spacing test, array resizing, and a resampled case.

Models trained at reduced resolution (e.g. the shipped defaults, trained at 2 mm on 1 mm BraTS
data) record ``ModelSpec.spacing`` in model-axis order. :func:`~.placement.prepare` then adds a
:class:`~.placement.Resample` step: the case's images are resampled to that spacing (trilinear,
``align_corners=False``; for a factor of 2 that is the 2x2x2 block mean), the network runs there,
and its probabilities come back to the case's grid (trilinear) before they are decoded, once. A
model whose spacing is within 25 % of the case's runs directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import preprocess as pp
from .case import Case
from .geometry import Geometry

#: Relative spacing difference under which no resampling is done.
TOLERANCE = 0.25


def internal_spacing(spec_spacing: Sequence[float], orientation: str = "LPS") -> tuple[float, float, float]:
    """``ModelSpec.spacing`` (model axes) as spacing of the internal ``(z, y, x)`` axes."""
    perm, _ = pp._axes_plan(orientation)
    out = [0.0, 0.0, 0.0]
    for model_axis, internal_axis in enumerate(perm):
        out[internal_axis] = float(spec_spacing[model_axis])
    return tuple(out)  # type: ignore[return-value]


def model_spacing(spacing: Sequence[float], orientation: str = "LPS") -> tuple[float, float, float]:
    """Internal ``(z, y, x)`` spacing in a model's axis order (inverse of :func:`internal_spacing`)."""
    perm, _ = pp._axes_plan(orientation)
    return tuple(float(spacing[p]) for p in perm)  # type: ignore[return-value]


def needs_resampling(case_spacing: Sequence[float], target: Sequence[float]) -> bool:
    """True when any axis differs by more than :data:`TOLERANCE` (relative)."""
    return any(abs(a - b) > TOLERANCE * b for a, b in zip(case_spacing, target))


def resize(arr: np.ndarray, shape: Sequence[int], mode: str = "trilinear") -> np.ndarray:
    """The last three axes of ``arr`` resized to ``shape`` (torch ``interpolate``; float32).

    ``"trilinear"`` uses ``align_corners=False`` (voxel centres, the same field of view);
    ``"nearest-exact"`` is its nearest-neighbour counterpart.
    """
    import torch
    import torch.nn.functional as F

    lead, size = arr.shape[:-3], tuple(int(s) for s in shape)
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32).reshape((1, -1) + arr.shape[-3:]))
    corners = False if mode == "trilinear" else None
    out = F.interpolate(t, size=size, mode=mode, align_corners=corners)[0].numpy()
    return out.reshape(tuple(lead) + size)


def majority_resize(lab: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A label map resized by the largest trilinear share of each value (ties: the higher value)."""
    values = np.unique(lab)
    if len(values) == 1:
        return np.full(tuple(int(s) for s in shape), values[0], lab.dtype)
    share = resize(np.stack([lab == v for v in values]).astype(np.float32), shape)
    share += np.arange(len(values), dtype=np.float32)[:, None, None, None] * 1e-4
    return values[np.argmax(share, axis=0)].astype(lab.dtype)


def resample_case(case: Case, spacing: Sequence[float]) -> Case:
    """A copy of ``case`` on a grid of internal ``(z, y, x)`` ``spacing`` (images only, no labels).

    The new grid covers the same field of view; its geometry is an LPS-stored grid whose voxel
    centres lie where trilinear resampling (``align_corners=False``) puts them.
    """
    old = np.asarray(case.shape)
    ratio = np.asarray(case.spacing, float) / np.asarray(spacing, float)
    new = np.maximum(np.round(old * ratio).astype(int), 1)
    images = {m: resize(a, new) for m, a in case.images.items()}
    scale = old / new  # old voxels per new voxel, per internal axis
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * scale - 0.5
    internal_affine = case.geometry.internal_affine @ m
    swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    file_affine = internal_affine @ swap  # file order (x, y, z) = internal reversed
    hdr = case.geometry.header.copy()
    hdr.set_data_shape(tuple(int(s) for s in new[::-1]))
    geo = Geometry(tuple(int(s) for s in new[::-1]), file_affine, hdr)
    return Case(case.case_id, images, geo, case.layout)
