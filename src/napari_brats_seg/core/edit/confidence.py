"""Move the tumour's border along the model's confidence: a threshold on its whole-tumour probability.

A model's labels are its whole-tumour probability cut at 0.5. Where the model is too generous (its
border lies outside the FLAIR hyperintensity all around) or too timid, the reader does not redraw the
border slice by slice: they drag one slider and watch the border move along the model's own
iso-probability surface, as CaPTk's and nnU-Net's users pick a probability threshold. On release:

- background voxels whose probability is at or above the threshold, and that are 26-connected to the
  tumour through such voxels, become edema (components the reader deleted elsewhere do not come back);
- edema voxels whose probability lies below the threshold become background.

The core (necrosis and enhancing tumour) never changes, so the reader's work inside it is kept.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ._common import EditError, as_labels, bbox

#: 26-connectivity.
CONN = np.ones((3, 3, 3), dtype=bool)
#: Probabilities may be stored as 8-bit integers: this value stands for 1.
UINT8_ONE = 255


def as_probability(probability: np.ndarray) -> np.ndarray:
    """A float32 probability map from floats in [0, 1] or 8-bit integers (0-255 for 0-1).

    Raises
    ------
    EditError
        When the values are not probabilities.
    """
    p = np.asarray(probability)
    if p.dtype == np.uint8:
        return p.astype(np.float32) / UINT8_ONE
    if not np.issubdtype(p.dtype, np.floating):
        raise EditError(f"the model's probabilities must be floats in [0, 1] or 8-bit integers, not {p.dtype}")
    p = p.astype(np.float32, copy=False)
    if p.size and (not np.isfinite(p).all() or float(p.min()) < 0.0 or float(p.max()) > 1.0):
        raise EditError("the model's probabilities must lie in [0, 1]")
    return p


def quantise(probability: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as 8-bit integers (a quarter of the memory, steps of 1/255)."""
    return np.rint(np.clip(np.asarray(probability, dtype=np.float32), 0.0, 1.0) * UINT8_ONE).astype(np.uint8)


def border_by_confidence(labels: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """The label map with the tumour's border moved to the iso-probability surface ``threshold``.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)`` (not modified).
    probability
        The model's whole-tumour probability on the same grid (floats in [0, 1] or 8-bit integers,
        :func:`as_probability`).
    threshold
        The probability at which the border lies, strictly between 0 and 1 (0.5: the model's own).

    Raises
    ------
    EditError
        For a threshold outside (0, 1), probabilities on another grid or out of range, or a label
        map without tumour.
    """
    labels = as_labels(labels)
    if not 0.0 < float(threshold) < 1.0:
        raise EditError(f"the confidence threshold must lie between 0 and 1, not {threshold:g}")
    if np.shape(probability) != labels.shape:
        raise EditError(f"the model's probabilities {np.shape(probability)} do not lie on the label map's "
                        f"grid {labels.shape}")
    tumour = labels != lab.BACKGROUND
    if not tumour.any():
        raise EditError("the layer holds no tumour whose border could move")
    p = as_probability(probability)
    sure = p >= float(threshold)
    box = bbox(sure | tumour, 1)
    assert box is not None
    sub, s_sure, s_tumour = labels[box], sure[box], tumour[box]
    comp, _ = ndimage.label(s_sure | s_tumour, structure=CONN)
    touching = np.unique(comp[s_tumour])
    grown = np.isin(comp, touching[touching > 0]) & s_sure
    out = labels.copy()
    new = sub.copy()
    new[grown & (sub == lab.BACKGROUND)] = lab.EDEMA
    new[~s_sure & (sub == lab.EDEMA)] = lab.BACKGROUND
    out[box] = new
    return out
