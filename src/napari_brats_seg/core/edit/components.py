"""Keep, delete or relabel the 3D connected component under a point (one click in the viewer).

A component is a 26-connected set of voxels (as :func:`..postprocess.remove_small_components`
counts islands) either of the clicked voxel's class (``scope="class"``) or of any tumour class
(``scope="tumour"``: the whole-tumour component, whatever its classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, as_labels, bbox, point_index

Scope = Literal["class", "tumour"]
_STRUCT = np.ones((3, 3, 3), dtype=bool)


def _scope_mask(labels: np.ndarray, value: int, scope: Scope) -> np.ndarray:
    if scope == "class":
        return labels == value
    if scope == "tumour":
        return np.isin(labels, lab.TUMOUR_CLASSES)
    raise EditError(f"unknown scope {scope!r}: use 'class' or 'tumour'")


def component_at(labels: np.ndarray, point: Sequence[float], scope: Scope = "class") -> np.ndarray:
    """The boolean mask of the connected component containing ``point``.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    point
        ``(z, y, x)`` voxel coordinates (rounded to the nearest voxel).
    scope
        ``"class"``: voxels of the clicked voxel's class; ``"tumour"``: voxels of any tumour class.

    Raises
    ------
    EditError
        When the point is outside the map or on background.
    """
    labels = as_labels(labels)
    idx = point_index(point, labels.shape)
    value = int(labels[idx])
    if value == lab.BACKGROUND:
        raise EditError("there is no label under the cursor: click on a labelled voxel")
    mask = _scope_mask(labels, value, scope)
    box = bbox(mask)
    assert box is not None  # the clicked voxel is in it
    comp, _ = ndimage.label(mask[box], structure=_STRUCT)
    local = tuple(i - s.start for i, s in zip(idx, box))
    out = np.zeros(labels.shape, dtype=bool)
    out[box] = comp == comp[local]
    return out


def delete_component(labels: np.ndarray, point: Sequence[float], scope: Scope = "class") -> np.ndarray:
    """The component under ``point`` becomes background."""
    out = np.array(labels, copy=True)
    out[component_at(labels, point, scope)] = lab.BACKGROUND
    return out


def keep_component(labels: np.ndarray, point: Sequence[float], scope: Scope = "class") -> np.ndarray:
    """Keep only the component under ``point``: every other component of its scope becomes background.

    With ``scope="class"`` the other components of the clicked class are removed (other classes are
    kept); with ``scope="tumour"`` every tumour voxel outside the clicked whole-tumour component is.
    """
    labels = as_labels(labels)
    comp = component_at(labels, point, scope)
    value = int(labels[point_index(point, labels.shape)])
    out = np.array(labels, copy=True)
    out[_scope_mask(labels, value, scope) & ~comp] = lab.BACKGROUND
    return out


def relabel_component(labels: np.ndarray, point: Sequence[float], new_class: int,
                      scope: Scope = "class") -> np.ndarray:
    """Every voxel of the component under ``point`` becomes ``new_class`` (one click).

    Raises
    ------
    EditError
        For an unknown class.
    """
    if int(new_class) not in lab.CLASS_NAMES:
        raise EditError(f"cannot relabel to class {new_class}: no such class")
    out = np.array(labels, copy=True)
    out[component_at(labels, point, scope)] = int(new_class)
    return out
