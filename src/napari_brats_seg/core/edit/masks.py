"""Intensity-limited painting: brush and fill change only voxels whose value lies in a window.

As 3D Slicer's *Editable intensity range* masking: the user picks a sequence and a window
``[low, high]`` of its values (taken from the voxel under the cursor by :func:`window_at`, then
adjustable); a brush stroke or a fill then changes only the voxels of that sequence inside the
window, so a stroke across the border of an enhancing rim stops at the rim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, as_labels, point_index, spacing3

Window = tuple[float, float]


def window_at(image: np.ndarray, point: Sequence[float], fraction: float = 0.1) -> Window:
    """A window around the value under ``point``: its 3x3x3 median plus or minus ``fraction`` of the
    image's robust range (0.5th to 99.5th percentile of its non-zero voxels)."""
    image = np.asarray(image)
    idx = point_index(point, image.shape)
    near = image[tuple(slice(max(i - 1, 0), i + 2) for i in idx)]
    centre = float(np.median(near))
    sample = image[::4, ::4, ::4]
    nz = sample[sample != 0]
    lo, hi = np.percentile(nz, [0.5, 99.5]) if nz.size else (0.0, 1.0)
    half = float(fraction) * float(max(hi - lo, 1e-6))
    return (centre - half, centre + half)


def in_window(image: np.ndarray, window: Window) -> np.ndarray:
    """Voxels of ``image`` whose value lies in ``[low, high]``."""
    lo, hi = float(window[0]), float(window[1])
    if hi < lo:
        raise EditError(f"the intensity window's low end {lo:g} lies above its high end {hi:g}")
    return (image >= lo) & (image <= hi)


def brush_indices(image: np.ndarray, centre: Sequence[float], radius_mm: float, window: Window,
                  spacing: Sequence[float] | None = None, axis: int | None = 0) -> tuple[np.ndarray, ...]:
    """Indices of the voxels a masked brush stroke at ``centre`` changes.

    The brush is a disc of ``radius_mm`` in the slice through ``centre`` across ``axis`` (a ball
    when ``axis`` is None), in mm with the spacing honoured, limited to voxels in the window.
    """
    image, sp = np.asarray(image), spacing3(spacing)
    c = point_index(centre, image.shape)
    r = [int(np.floor(float(radius_mm) / s)) for s in sp]
    if axis is not None:
        r[axis] = 0
    box = tuple(slice(max(ci - ri, 0), min(ci + ri + 1, n)) for ci, ri, n in zip(c, r, image.shape))
    grids = np.ogrid[box]
    d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grids, c, sp))
    inside = (d2 <= float(radius_mm) ** 2) & in_window(image[box], window)
    local = np.nonzero(inside)
    return tuple(ix + b.start for ix, b in zip(local, box))


def masked_brush(labels: np.ndarray, image: np.ndarray, centre: Sequence[float], radius_mm: float, cls: int,
                 window: Window, spacing: Sequence[float] | None = None, axis: int | None = 0) -> np.ndarray:
    """The label map after one masked brush dab of class ``cls`` (0 erases) at ``centre``."""
    out = np.array(as_labels(labels), copy=True)
    out[brush_indices(image, centre, radius_mm, window, spacing, axis)] = int(cls)
    return out


def masked_fill(labels: np.ndarray, image: np.ndarray, point: Sequence[float], cls: int, window: Window,
                axis: int | None = 0) -> np.ndarray:
    """Fill with ``cls`` the region under ``point``: voxels connected to it (faces) that hold the same
    label and lie in the window, in the slice across ``axis`` (in 3D when ``axis`` is None).

    Raises
    ------
    EditError
        When the voxel under the point is outside the window, or already of class ``cls``.
    """
    labels = as_labels(labels)
    if np.shape(image) != labels.shape:
        raise EditError(f"the sequence {np.shape(image)} does not lie on the label map's grid {labels.shape}")
    idx = point_index(point, labels.shape)
    if not in_window(np.asarray(image)[idx], window):
        raise EditError(f"the voxel under the cursor ({float(np.asarray(image)[idx]):g}) lies outside the "
                        f"intensity window [{window[0]:g}, {window[1]:g}]")
    if int(labels[idx]) == int(cls):
        raise EditError(f"the voxel under the cursor is already {lab.CLASS_NAMES.get(int(cls), cls)}")
    region: tuple[slice | int, ...] = tuple(slice(None) if a != axis else i for a, i in enumerate(idx))
    sub_lab, sub_img = labels[region], np.asarray(image)[region]
    ok = (sub_lab == labels[idx]) & in_window(sub_img, window)
    comp, _ = ndimage.label(ok)
    local = tuple(i for a, i in enumerate(idx) if a != axis)
    out = np.array(labels, copy=True)
    out[region][comp == comp[local]] = int(cls)
    return out
