"""Redraw a region on a few slices: outlines on key slices replace the region between them.

What ITK-SNAP and 3D Slicer users do when a prediction's border is wrong over many slices: trace
the true border on a few slices and let the tool interpolate between them. The user draws closed
outlines (one drag around each part) into a scratch *outline layer* on some slices of the slicing
axis; each outlined slice's filled outlines (holes filled, so a drawn contour counts as what it
encloses) is the region's new section there, the slices between two outlined slices get the
shape-based interpolation of :mod:`.interpolate` (signed distance maps in mm), and on every slice
from the first to the last outlined one the region is replaced by that extent:

- voxels of the region outside the extent become ``outside`` (background for the whole tumour,
  edema for the core or one of its classes: the core shrinks inside the tumour around it);
- voxels inside the extent that are not of the region become ``fill`` (edema for the whole
  tumour, necrosis for the core): classes of the region already there are kept.

Slices outside the outlined range are never touched, so a redraw edits only where the user drew.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, Target, as_labels, spacing3, target_classes, target_name
from .interpolate import between

#: The label each target's new voxels get by default.
DEFAULT_FILL: dict[str, int] = {"WT": lab.EDEMA, "TC": lab.NECROTIC, "ET": lab.ENHANCING}


def default_fill(region: Target) -> int:
    """The class new voxels of ``region`` get unless told (edema for WT, necrosis for TC)."""
    return DEFAULT_FILL.get(str(region).upper(), 0) if isinstance(region, str) else int(region)


def default_outside(region: Target) -> int:
    """What voxels leaving ``region`` become: background for WT (and edema), edema inside the tumour."""
    classes = target_classes(region)
    return lab.BACKGROUND if lab.EDEMA in classes else lab.EDEMA


def outlined_extent(outlines: np.ndarray, axis: int = 0,
                    spacing: Sequence[float] | None = None) -> tuple[np.ndarray, int, int]:
    """The region's new extent drawn by ``outlines``, and the first and last outlined slice.

    Every slice (along ``axis``) holding an outline is a key slice; its outlines with their holes
    filled are the extent there; the slices between two key slices get the interpolation of their
    signed distance maps (in mm). Returns ``(extent, first, last)``.

    Raises
    ------
    EditError
        When no slice holds an outline.
    """
    drawn = as_labels(outlines) != 0
    sp = spacing3(spacing)
    other = tuple(a for a in range(3) if a != axis)
    keys = np.flatnonzero(drawn.any(axis=other))
    if keys.size == 0:
        raise EditError("draw the region's outline on at least one slice of the outline layer first")
    extent = np.zeros(drawn.shape, dtype=bool)
    moved, src = np.moveaxis(extent, axis, 0), np.moveaxis(drawn, axis, 0)
    for k in keys:
        moved[k] = ndimage.binary_fill_holes(src[k])
    plane_sp = tuple(s for i, s in enumerate(sp) if i != axis)
    for a, b in zip(keys[:-1], keys[1:]):
        if b - a < 2:
            continue
        box, insides = between(moved[a], moved[b], b - a - 1, plane_sp)
        for k, inside in zip(range(a + 1, b), insides):
            moved[k][box] = inside
    return extent, int(keys[0]), int(keys[-1])


def redraw(labels: np.ndarray, outlines: np.ndarray, region: Target = "WT", fill: int | None = None,
           outside: int | None = None, axis: int = 0, spacing: Sequence[float] | None = None) -> np.ndarray:
    """The label map with ``region`` replaced by the outlined extent between the outlined slices.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    outlines
        The outline layer (any nonzero voxel is drawn), same shape.
    region
        What the outlines trace: ``"WT"``, ``"TC"``, ``"ET"`` or a class.
    fill
        The class voxels entering the region get (default :func:`default_fill`).
    outside
        What voxels leaving the region become (default :func:`default_outside`).
    axis
        The slicing axis the outlines were drawn in (0: axial).
    spacing
        Voxel spacing ``(z, y, x)`` in mm.

    Raises
    ------
    EditError
        With no outline, outlines of another shape, or a ``fill`` outside the region.
    """
    labels = as_labels(labels)
    if np.shape(outlines) != labels.shape:
        raise EditError(f"the outline layer's shape {np.shape(outlines)} differs from the labels' {labels.shape}")
    classes = target_classes(region)
    fill = default_fill(region) if fill is None else int(fill)
    outside = default_outside(region) if outside is None else int(outside)
    if fill not in classes:
        raise EditError(f"new voxels of the {target_name(region)} must get one of its classes, "
                        f"not {lab.CLASS_NAMES.get(fill, fill)}")
    if outside in classes:
        raise EditError(f"voxels leaving the {target_name(region)} cannot stay in it "
                        f"({lab.CLASS_NAMES.get(outside, outside)})")
    extent, first, last = outlined_extent(outlines, axis, spacing)
    out = np.array(labels, copy=True)
    index: list[slice] = [slice(None)] * 3
    index[axis] = slice(first, last + 1)
    slab, ext = out[tuple(index)], extent[tuple(index)]
    inside = np.isin(slab, classes)
    slab[inside & ~ext] = outside
    slab[ext & ~inside] = fill
    return out
