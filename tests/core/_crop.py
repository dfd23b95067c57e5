"""The window of a real case's voxels around its tumour, shared by the core tests' crop builders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np


def tumour_window(seg_path: Path, size: Sequence[int]) -> tuple[tuple[slice, ...], np.ndarray]:
    """Slices of a ``size`` window centred on the tumour's bounding box (clipped to the image), and
    the affine shift that keeps the window where it lay in the full volume (``affine @ shift``)."""
    seg = nib.load(str(seg_path))
    idx = np.argwhere(np.asarray(seg.dataobj) > 0)
    size = np.asarray(size)
    start = np.clip((idx.min(0) + idx.max(0)) // 2 - size // 2, 0, np.array(seg.shape) - size)
    window = tuple(slice(int(s), int(s) + int(c)) for s, c in zip(start, size))
    shift = np.eye(4)
    shift[:3, 3] = start
    return window, shift
