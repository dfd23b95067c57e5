"""Surface-distance primitives shared by :mod:`.metrics` and :mod:`.lesionwise` (a bottom module:
it imports neither).

- :func:`check_spacing`: a voxel spacing validated and broadcast to the image's axes.
- :func:`bounding_box`, :func:`surface`: a mask's box and its surface voxels (a 6-neighbour outside
  the mask, the image border counting as outside).
- :func:`surface_distances`, :func:`hausdorff95`: directed surface distances in mm (anisotropic
  spacing) and the symmetric percentile Hausdorff distance with the BraTS empty-mask policy
  (:data:`HD95_MAX_MM`); see :mod:`.metrics` for the definitions and the MONAI agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .errors import CaseError

#: HD95 (mm) given when exactly one of the two masks is empty: the 240x240x155 mm volume's diagonal.
HD95_MAX_MM = 373.13


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """``spacing`` (one number, or one per axis) as ``ndim`` floats.

    Raises
    ------
    CaseError
        When a spacing is not positive and finite.
    """
    sp = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,)))
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise CaseError(f"voxel spacing must be positive and finite, got {sp}")
    return sp


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding every True voxel, grown by ``margin`` and clipped to the image.

    Returns None for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    box = []
    for axis in range(m.ndim):
        other = tuple(a for a in range(m.ndim) if a != axis)
        hit = np.flatnonzero(np.any(m, axis=other))
        if hit.size == 0:
            return None
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin + 1, m.shape[axis])))
    return tuple(box)


def surface(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a boolean mask: voxels with a 6-neighbour outside it (or on the border)."""
    m = np.asarray(mask, dtype=bool)
    return m ^ ndimage.binary_erosion(m)


def surface_distances(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm) between two non-empty boolean masks.

    Returns
    -------
    pred_to_gt, gt_to_pred
        For every surface voxel of ``pred`` the distance to the nearest surface voxel of ``gt``, and
        the reverse. Both are empty arrays when either mask is empty.
    """
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if p.shape != g.shape:
        raise CaseError(f"masks differ in shape: {p.shape} and {g.shape}")
    sp = check_spacing(spacing, p.ndim)
    box = bounding_box(p | g, margin=1)
    if box is None or not p.any() or not g.any():
        return np.zeros(0), np.zeros(0)
    p, g = p[box], g[box]
    sp_, sg = surface(p), surface(g)
    to_gt = ndimage.distance_transform_edt(~sg, sampling=sp)
    to_pred = ndimage.distance_transform_edt(~sp_, sampling=sp)
    return to_gt[sp_], to_pred[sg]


def hausdorff95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance (mm) with the BraTS empty-mask policy.

    The larger of the two directed ``percentile``-th percentiles of :func:`surface_distances`; 0 when
    both masks are empty, :data:`HD95_MAX_MM` when exactly one is.
    """
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 0.0
    if has_p != has_g:
        return HD95_MAX_MM
    a, b = surface_distances(p, g, spacing)
    return float(max(np.percentile(a, percentile), np.percentile(b, percentile)))


__all__ = ["HD95_MAX_MM", "bounding_box", "check_spacing", "hausdorff95", "surface", "surface_distances"]
