"""Label-map corrections of the Correct widget, and applying them as one undoable step.

The operations are pure functions of an internal-class label map ``(z, y, x)`` (0 background,
1 necrotic core, 2 edema, 3 enhancing tumour); :func:`apply_edit` writes the difference into a
napari labels layer through ``data_setitem`` inside ``block_history()``, so that one ``undo``
restores the layer exactly, and the layer's ``paint`` event fires (autosave and the Score widget
listen to it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..core import labels as lab
from ..core.postprocess import remove_small_components


def remove_small_islands(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Whole-tumour components (26-connected) smaller than ``min_voxels`` become background."""
    return remove_small_components(labels, int(min_voxels))


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a ``(z, y, x)`` mask in every axial slice."""
    out = np.zeros_like(mask, dtype=bool)
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    for z in zs:
        out[z] = ndimage.binary_fill_holes(mask[z])
    return out


def fill_holes_slicewise(labels: np.ndarray, label: int) -> np.ndarray:
    """Background voxels enclosed by class ``label`` within an axial slice become ``label``.

    Only background is filled: voxels of other classes inside the holes keep their class.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    if label == lab.BACKGROUND:
        return out
    filled = _fill_holes_2d(out == label)
    out[filled & (out == lab.BACKGROUND)] = label
    return out


def nest_regions(labels: np.ndarray) -> np.ndarray:
    """Make the tumour regions nest as BraTS reads them: ET inside TC inside WT.

    Per axial slice, voxels enclosed by the tumour core (NCR | ET) that are edema or background become
    necrotic core (the core is solid: enhancing rim around necrosis), and background voxels enclosed
    by the whole tumour become edema. Voxels of the three classes are otherwise unchanged, so the
    operation is idempotent.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    tc = (out == lab.NECROTIC) | (out == lab.ENHANCING)
    core_holes = _fill_holes_2d(tc) & ~tc & ((out == lab.EDEMA) | (out == lab.BACKGROUND))
    out[core_holes] = lab.NECROTIC
    wt = np.isin(out, lab.REGION_CLASSES["WT"])
    out[_fill_holes_2d(wt) & (out == lab.BACKGROUND)] = lab.EDEMA
    return out


def apply_edit(layer: Any, new: np.ndarray) -> int:
    """Write ``new`` into a labels layer as ONE undoable step; returns how many voxels changed.

    Raises
    ------
    ValueError
        When ``new`` does not have the layer's shape.
    """
    data = layer.data
    new = np.asarray(new)
    if new.shape != tuple(data.shape):
        raise ValueError(f"edit of shape {new.shape} does not fit the layer's {tuple(data.shape)}")
    changed = np.nonzero(np.asarray(data) != new)
    n = int(changed[0].size)
    if n == 0:
        return 0
    with layer.block_history():
        layer.data_setitem(changed, new[changed].astype(data.dtype, copy=False))
    return n
