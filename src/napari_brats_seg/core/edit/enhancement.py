"""Split the tumour core by enhancement: enhancing tumour where T1ce is bright, necrosis where it is dark.

The BraTS definition of the enhancing tumour is the part of the core that enhances on T1ce; a model
often confuses it with the necrosis inside it. A reader fixes that the way 3D Slicer's *Threshold*
effect with the core as the editable area does: inside the core (necrosis and enhancing tumour),
voxels whose T1ce value is at or above a threshold become enhancing tumour, those below become
necrosis. The default threshold is Otsu's on the T1ce values inside that core (scikit-image's
``threshold_otsu``), which separates the bright rim from the dark centre; the user may set another.
Edema and background are never touched, so the whole tumour and the core stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, as_labels, bbox, point_index

#: The core's classes.
CORE = (lab.NECROTIC, lab.ENHANCING)


def core_mask(labels: np.ndarray, point: Sequence[float] | None = None) -> np.ndarray:
    """The core (necrosis and enhancing tumour): all of it, or its 26-connected component under ``point``.

    Raises
    ------
    EditError
        When the label map holds no core, or the point lies outside it.
    """
    labels = as_labels(labels)
    core = np.isin(labels, CORE)
    if not core.any():
        raise EditError("there is no tumour core (necrosis or enhancing tumour) to split")
    if point is None:
        return core
    idx = point_index(point, labels.shape)
    if not core[idx]:
        raise EditError("click inside the tumour core (necrosis or enhancing tumour) to split it")
    box = bbox(core, 1)
    assert box is not None
    comp, _ = ndimage.label(core[box], structure=np.ones((3, 3, 3), dtype=bool))
    local = tuple(i - b.start for i, b in zip(idx, box))
    out = np.zeros(labels.shape, dtype=bool)
    out[box] = comp == comp[local]
    return out


def otsu_threshold(t1ce: np.ndarray, core: np.ndarray) -> float:
    """Otsu's threshold of the T1ce values inside ``core``.

    Raises
    ------
    EditError
        When T1ce is constant inside the core (nothing to separate).
    """
    from skimage.filters import threshold_otsu

    values = np.asarray(t1ce)[core]
    if values.size == 0 or float(values.max()) <= float(values.min()):
        raise EditError("T1ce is uniform inside the core: pick the threshold by hand")
    return float(threshold_otsu(values))


def split_core(labels: np.ndarray, t1ce: np.ndarray, threshold: float | None = None,
               point: Sequence[float] | None = None) -> tuple[np.ndarray, float]:
    """The label map with its core split by T1ce: enhancing tumour at or above ``threshold``, necrosis below.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)``.
    t1ce
        The case's T1ce on the same grid.
    threshold
        The T1ce value separating them; None: Otsu's threshold inside the core.
    point
        Only the core's connected component under this ``(z, y, x)`` point; None: the whole core.

    Returns
    -------
    labels, threshold
        The new label map (the input is not modified) and the threshold used.

    Raises
    ------
    EditError
        With no core, a point outside it, a T1ce of another shape, or a uniform T1ce in the core.
    """
    labels = as_labels(labels)
    if np.shape(t1ce) != labels.shape:
        raise EditError(f"the T1ce {np.shape(t1ce)} does not lie on the label map's grid {labels.shape}")
    core = core_mask(labels, point)
    thr = otsu_threshold(t1ce, core) if threshold is None else float(threshold)
    bright = np.asarray(t1ce) >= thr
    out = np.array(labels, copy=True)
    out[core & bright] = lab.ENHANCING
    out[core & ~bright] = lab.NECROTIC
    return out, thr
