"""DeepMedic's inference tiling: where its tiles fall and what its subsampled pathways see.

Reproduces DeepMedic 0.8.x's ``get_slice_coords_of_all_img_tiles`` (tiles of ``segment^3`` inputs
every ``segment - rec_field + 1`` voxels, the last one shifted back to the border) and
``get_subsampl_segment`` (the subsampled pathways' inputs anchored to the tile, filled with the
image's border intensity outside it), on numpy arrays ``(C, a0, a1, a2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def corner_background(img: np.ndarray) -> np.ndarray:
    """Per channel of ``(C, a0, a1, a2)``, the mean of the 8 corner voxels (DeepMedic's "border intensity")."""
    return np.array([np.mean([c[i, j, k] for i in (0, -1) for j in (0, -1) for k in (0, -1)]) for c in img],
                    dtype=np.float32)


def plan_tiles(img: np.ndarray, rec_field: int, segment: int) -> dict[str, Any]:
    """Pad a ``(C, a0, a1, a2)`` image and list DeepMedic's inference tiles.

    The image is extended by ``(rec_field - 1) // 2`` voxels per side (more on the high side when it
    is smaller than a segment) by mirroring (numpy's ``"reflect"``, as DeepMedic 0.8 pads);
    tiles are the lower corners of ``segment^3`` inputs at strides of ``segment - rec_field + 1``, the
    last one along each axis shifted back to end at the border; tiles whose output holds no brain voxel
    (any channel different from its background) are left out. ``has_brain(lo, size)`` tells whether a
    box of the padded image holds brain.
    """
    bg = corner_background(img)
    lo = (rec_field - 1) // 2
    hi = rec_field - 1 - lo
    pads = []
    for n in img.shape[1:]:
        extra = max(0, segment - (n + lo + hi))
        pads.append((lo, hi + extra))
    padded = np.empty((img.shape[0],) + tuple(n + a + b for n, (a, b) in zip(img.shape[1:], pads)), np.float32)
    for c in range(img.shape[0]):
        padded[c] = np.pad(img[c], pads, mode="reflect")
    brain = np.any(padded != bg[:, None, None, None], axis=0)
    stride = segment - rec_field + 1
    starts = []
    for n in padded.shape[1:]:
        axis_starts = []
        nxt = 0
        while True:
            far = min(nxt + segment, n)
            axis_starts.append(far - segment)
            nxt += stride
            if far >= n:
                break
        starts.append(axis_starts)
    # DeepMedic loops z outermost, then c, then r; later tiles overwrite earlier ones. It keeps tiles
    # whose input holds brain; tiles whose *output* holds none change no label inside the brain (they
    # only overwrite voxels outside it), so they are left out too. Sums over boxes: summed-area table.
    sat = np.pad(brain.astype(np.int32), ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)

    def has_brain(lo: tuple[int, ...], size: int) -> bool:
        r, c, z = (max(v, 0) for v in lo)
        r1, c1, z1 = (min(v + size, n) for v, n in zip(lo, brain.shape))
        if r1 <= r or c1 <= c or z1 <= z:
            return False
        s = (sat[r1, c1, z1] - sat[r, c1, z1] - sat[r1, c, z1] - sat[r1, c1, z] + sat[r, c, z1] + sat[r, c1, z]
             + sat[r1, c, z] - sat[r, c, z])
        return bool(s > 0)

    half = (rec_field - 1) // 2
    tiles = [(r, c, z) for z in starts[2] for c in starts[1] for r in starts[0]
             if has_brain((r + half, c + half, z + half), stride)]
    return {"padded": padded, "tiles": tiles, "pad_lo": [p[0] for p in pads], "background": bg,
            "has_brain": has_brain}


def subsampled_segment(channels: np.ndarray, background: np.ndarray, tile_lo: Sequence[int], factor: int,
                       rec_field: int, out_size: int, size: int) -> np.ndarray:
    """The input of a subsampled pathway for one tile, as DeepMedic's ``get_subsampl_segment`` builds it.

    Voxels every ``factor`` along each axis, starting ``((factor - 1) // 2) * rec_field`` voxels (plus
    the centre of a factor-wide cell) before the tile, so that the pathway's output lines up with the
    normal pathway's; outside the image the channel's background value. Near the low border DeepMedic
    places the in-image samples at ``|low| // factor``, which shifts their grid; that is reproduced.
    """
    c_n = channels.shape[0]
    dims = channels.shape[1:]
    out = np.empty((c_n, size, size, size), np.float32)
    out[:] = background[:, None, None, None]
    if factor % 2 == 1:
        before, centre = (factor - 1) // 2 * rec_field, factor // 2
    else:
        before, centre = (factor - 2) // 2 * rec_field + rec_field // 2, factor // 2 - 1
    src, dst = [], []
    for d in range(3):
        low = tile_lo[d] + centre - before
        high = int(low + factor * rec_field + (math.ceil(out_size / factor) - 1) * factor)
        low_c, high_c = max(low, 0), min(high, dims[d])
        put = 0 if low >= 0 else abs(low) // factor
        n = max(0, math.ceil((high_c - low_c) / factor))
        n = min(n, size - put)
        src.append(slice(low_c, low_c + factor * n, factor))
        dst.append(slice(put, put + n))
    out[(slice(None),) + tuple(dst)] = channels[(slice(None),) + tuple(src)]
    return out
