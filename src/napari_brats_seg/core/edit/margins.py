"""Margins (grow or shrink by N mm) and smoothing (closing, opening, median in mm) of a class or region.

Distances are Euclidean in millimetres with anisotropic voxels honoured: growing is thresholding
``distance_transform_edt(~mask, sampling=spacing)`` (a voxel joins when its centre lies within N mm
of a voxel of the target), shrinking is thresholding the distance to the nearest voxel outside it.
Closing and opening are grow-then-shrink and shrink-then-grow by the same radius (morphology by a
Euclidean ball), the median is a majority vote in a box of the given size in mm (as 3D Slicer's
Smoothing effect). All of it runs in the target's bounding box padded by the radius.

Voxels a tool adds take the class of the nearest voxel of the target (so a region grows with its
own classes) and, with ``overwrite="background"`` (the default), only background is taken over;
voxels a tool removes become background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, Target, as_labels, bbox, mm_to_voxels, spacing3, target_classes

Overwrite = Literal["background", "all"]
Smoothing = Literal["closing", "opening", "median"]


def grow_mask(mask: np.ndarray, mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels whose centre lies within ``mm`` of a True voxel of ``mask`` (dilation by a ball)."""
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= mm


def shrink_mask(mask: np.ndarray, mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels of ``mask`` farther than ``mm`` from every voxel outside it (erosion by a ball)."""
    return ndimage.distance_transform_edt(mask, sampling=spacing) > mm


def median_mask(mask: np.ndarray, mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Majority vote of ``mask`` in a box ``mm`` wide (odd voxel counts, at least 1 per axis)."""
    size = tuple(2 * int(round(float(mm) / (2 * s))) + 1 for s in spacing)
    return ndimage.uniform_filter(mask.astype(np.float32), size=size, mode="constant") > 0.5


def _write(labels: np.ndarray, box: tuple[slice, ...], old: np.ndarray, new: np.ndarray,
           classes: tuple[int, ...], spacing: Sequence[float], overwrite: Overwrite) -> np.ndarray:
    """Apply a changed target mask inside ``box``: removed voxels -> background, added -> nearest class."""
    if overwrite not in ("background", "all"):
        raise EditError(f"overwrite must be 'background' or 'all', got {overwrite!r}")
    out = np.array(labels, copy=True)
    region = out[box]
    region[old & ~new] = lab.BACKGROUND
    added = new & ~old
    if overwrite == "background":
        added &= labels[box] == lab.BACKGROUND
    if added.any():
        if len(classes) == 1:
            region[added] = classes[0]
        else:
            _, nearest = ndimage.distance_transform_edt(~old, sampling=spacing, return_indices=True)
            src = labels[box]
            region[added] = src[tuple(ix[added] for ix in nearest)]
    return out


def margin(labels: np.ndarray, target: Target, mm: float, spacing: Sequence[float] | None = None,
           overwrite: Overwrite = "background") -> np.ndarray:
    """Grow (``mm`` > 0) or shrink (``mm`` < 0) a class or region by ``|mm|`` millimetres.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    target
        Class (1, 2, 3) or region (``"WT"``, ``"TC"``, ``"ET"``).
    mm
        Margin in millimetres; negative shrinks.
    spacing
        Voxel spacing ``(z, y, x)`` in mm.
    overwrite
        ``"background"``: growing takes only background voxels; ``"all"``: any voxel.

    Raises
    ------
    EditError
        When the target is absent, or ``mm`` is 0.
    """
    labels, sp, classes = as_labels(labels), spacing3(spacing), target_classes(target)
    if float(mm) == 0:
        raise EditError("a margin of 0 mm changes nothing: give a positive (grow) or negative (shrink) size")
    mask = np.isin(labels, classes)
    box = bbox(mask, [v + 1 for v in mm_to_voxels(abs(mm), sp)])
    if box is None:
        raise EditError(f"there is no {target} to grow or shrink")
    old = mask[box]
    new = grow_mask(old, float(mm), sp) if mm > 0 else shrink_mask(old, -float(mm), sp)
    return _write(labels, box, old, new, classes, sp, overwrite)


def smooth(labels: np.ndarray, target: Target, method: Smoothing, mm: float,
           spacing: Sequence[float] | None = None, overwrite: Overwrite = "background") -> np.ndarray:
    """Smooth a class or region: ``closing`` fills gaps and dents narrower than ``2 * mm``,
    ``opening`` removes protrusions and specks thinner than ``2 * mm``, ``median`` takes the
    majority in a box ``mm`` wide.

    Raises
    ------
    EditError
        For an unknown method, a non-positive size or an absent target.
    """
    labels, sp, classes = as_labels(labels), spacing3(spacing), target_classes(target)
    if float(mm) <= 0:
        raise EditError(f"the smoothing size must be positive, got {mm} mm")
    mask = np.isin(labels, classes)
    pad = [2 * v + 2 for v in mm_to_voxels(mm, sp)]
    box = bbox(mask, pad)
    if box is None:
        raise EditError(f"there is no {target} to smooth")
    old = mask[box]
    if method == "closing":
        new = shrink_mask(grow_mask(old, mm, sp), mm, sp)
    elif method == "opening":
        new = grow_mask(shrink_mask(old, mm, sp), mm, sp)
    elif method == "median":
        new = median_mask(old, mm, sp)
    else:
        raise EditError(f"unknown smoothing {method!r}: use closing, opening or median")
    return _write(labels, box, old, new, classes, sp, overwrite)
