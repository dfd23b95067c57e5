"""Volumes (mL) of the tumour classes and regions of a label map, and lesion counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..lesionwise import CONNECTIVITY_26

#: The volumes reported, in order: the three labels, then the two regions that contain them.
VOLUME_KEYS = ("NCR", "ED", "ET", "TC", "WT")


def volumes_ml(internal: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Volumes in mL of NCR, ED, ET, TC (NCR + ET) and WT (NCR + ED + ET); RC too when present.

    Parameters
    ----------
    internal
        Internal-class label map (:mod:`..labels`).
    spacing
        Voxel spacing in mm.
    """
    counts = np.bincount(np.asarray(internal, np.uint8).ravel(), minlength=5)
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    ncr, ed, et = (int(counts[c]) for c in (lab.NECROTIC, lab.EDEMA, lab.ENHANCING))
    out = {"NCR": ncr, "ED": ed, "ET": et, "TC": ncr + et, "WT": ncr + ed + et}
    if counts[lab.RESECTION]:
        out["RC"] = int(counts[lab.RESECTION])
    return {k: v * voxel_ml for k, v in out.items()}


def count_lesions(mask: np.ndarray) -> int:
    """Number of 3D connected components (26-connectivity) of a boolean mask."""
    return int(ndimage.label(np.asarray(mask, bool), structure=CONNECTIVITY_26)[1])
