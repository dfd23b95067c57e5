"""Fill between slices: the user outlines a class on a few slices, the slices between are interpolated.

Every slice (along ``axis``) holding the class is a key slice; each run of empty slices between two
key slices is filled by interpolating the key slices' **signed distance maps** (in mm, in-plane
spacing honoured) linearly along the axis and keeping where the interpolated distance is negative.
Two equal discs give the cylinder between them, two discs of different radii a cone frustum, and
a shape that moves between key slices slides across the gap. This is the classic shape-based
interpolation (Raya & Udupa 1990; Herman et al. 1992); ITK's morphological contour interpolation,
which 3D Slicer and ITK-SNAP use, also aligns non-overlapping shapes and treats branching more
carefully, but needs ITK (about 285 MB of wheels); see the README.

Only background voxels of the gap slices are filled; key slices and other classes are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, as_labels, bbox, spacing3


def signed_distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Signed distance (mm) to the border of a 2D mask: negative inside, positive outside.

    Distances are measured between voxel centres and shifted by half a voxel so that the border
    lies between the last voxel inside and the first voxel outside (zero level).
    """
    half = 0.5 * min(spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.where(mask, half - inside, outside - half).astype(np.float32)


def between(ma: np.ndarray, mb: np.ndarray, gap: int, plane_spacing: Sequence[float]
            ) -> tuple[tuple[slice, ...], list[np.ndarray]]:
    """The shapes of the ``gap`` slices between two key sections ``ma`` and ``mb`` (2D masks).

    Returns the in-plane box around both sections (padded by a voxel) and, per gap slice in order,
    the mask inside that box where the linearly interpolated signed distance is negative.
    """
    box = bbox(ma | mb, 1)
    assert box is not None
    da, db = signed_distance(ma[box], plane_spacing), signed_distance(mb[box], plane_spacing)
    steps = [(k + 1) / (gap + 1) for k in range(gap)]
    return box, [(1 - t) * da + t * db < 0 for t in steps]


def key_slices(labels: np.ndarray, cls: int, axis: int = 0) -> np.ndarray:
    """Indices of the slices along ``axis`` that hold class ``cls``."""
    other = tuple(a for a in range(labels.ndim) if a != axis)
    return np.flatnonzero((as_labels(labels) == int(cls)).any(axis=other))


def fill_between_slices(labels: np.ndarray, cls: int, axis: int = 0,
                        spacing: Sequence[float] | None = None) -> np.ndarray:
    """Interpolate class ``cls`` into the empty slices between the slices that hold it.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    cls
        The class outlined (1, 2 or 3).
    axis
        The slicing axis the user outlined in (0: axial for the internal ``(z, y, x)`` order).
    spacing
        Voxel spacing ``(z, y, x)`` in mm (only the in-plane spacing matters).

    Raises
    ------
    EditError
        When fewer than two slices hold the class, or no slice between them is empty.
    """
    labels, sp = as_labels(labels), spacing3(spacing)
    if int(cls) not in lab.TUMOUR_CLASSES:
        raise EditError(f"pick a tumour class to interpolate, not {lab.CLASS_NAMES.get(int(cls), cls)}")
    keys = key_slices(labels, cls, axis)
    name = lab.CLASS_NAMES[int(cls)]
    if keys.size < 2:
        raise EditError(f"outline the {name} on at least two slices (found {keys.size}) to fill between them")
    gaps = [(int(a), int(b)) for a, b in zip(keys[:-1], keys[1:]) if b - a > 1]
    if not gaps:
        raise EditError(f"the {name} has no empty slice between its outlined slices: nothing to fill")
    out = np.array(labels, copy=True)
    moved = np.moveaxis(out, axis, 0)            # a view: writing into it writes into out
    src = np.moveaxis(labels, axis, 0)
    plane_sp = tuple(s for i, s in enumerate(sp) if i != axis)
    for a, b in gaps:
        box, insides = between(src[a] == cls, src[b] == cls, b - a - 1, plane_sp)
        for k, inside in zip(range(a + 1, b), insides):
            region = moved[k][box]
            region[inside & (region == lab.BACKGROUND)] = cls
    return out
