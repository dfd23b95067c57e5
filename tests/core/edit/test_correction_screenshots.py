"""The napari-free helpers of ``scripts/correction_screenshots.py``: where the session acts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

from correction_redraw import MIN_PART  # noqa: E402
from correction_screenshots import _false_component, _key_slices, _missed, _traced  # noqa: E402
from scipy import ndimage  # noqa: E402

from napari_brats_seg.core.edit import redraw  # noqa: E402


def test_false_component_and_missed_edema_are_found() -> None:
    gt = np.zeros((20, 30, 30), np.uint8)
    gt[5:15, 5:15, 5:15] = 2                              # the tumour: edema ...
    gt[8:12, 8:12, 8:12] = 1                              # ... around a core
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)       # the edema missed
    pred[4:10, 20:28, 20:28] = 3                          # a false tumour elsewhere
    pred[12:14, 20:28, 20:28] = 2                         # a smaller one
    z, y, x = _false_component(pred, gt)
    assert pred[z, y, x] == 3 and 4 <= z < 10 and gt[z, y, x] == 0
    assert _false_component(gt, gt) is None               # nothing false: nothing to delete
    err = _missed(pred, gt, 2)
    assert err.kind == "fn" and err.cls == 2 and np.array_equal(err.mask, (gt == 2) & (pred != 2))
    assert _missed(gt, gt, 2) is None


def test_reference_outlines_on_three_slices_redraw_its_sections() -> None:
    zz, yy, xx = np.ogrid[:40, :40, :40]
    gt = np.zeros((40, 40, 40), np.uint8)
    gt[((zz - 20) / 12.0) ** 2 + ((yy - 20) / 10.0) ** 2 + ((xx - 18) / 9.0) ** 2 <= 1] = 2
    gt[18:23, 17:22, 15:20] = 0                           # a hole (necrosis the reader's outline encloses)
    gt[20, 35:37, 35:37] = 2                              # a speck no one traces
    zs = _key_slices(gt)
    extent = np.flatnonzero(gt.any(axis=(1, 2)))
    assert len(zs) == 3 and extent[0] < zs[0] < zs[1] < zs[2] < extent[-1]
    assert abs(zs[1] - (extent[0] + extent[-1]) / 2) <= 1
    assert _key_slices(np.zeros_like(gt)) == []

    ring = _traced(gt[20] > 0)
    section = ndimage.binary_fill_holes(gt[20] > 0)
    section[35:37, 35:37] = False                         # 4 voxels < MIN_PART: left out
    assert MIN_PART > 4 and np.array_equal(ndimage.binary_fill_holes(ring), section)
    assert ring.sum() < section.sum() / 2 and not ndimage.binary_erosion(ring, iterations=2).any()

    outlines = np.zeros(gt.shape, np.uint8)
    for z in zs:
        outlines[z] = _traced(gt[z] > 0)
    pred = np.zeros_like(gt)
    pred[5:35, 5:35, 25:35] = 2                            # a wrong tumour, beside the true one
    new = redraw.redraw(pred, outlines, "WT")
    for z in zs:                                          # the outlined slices: the reference's sections
        assert np.array_equal(new[z] > 0, ndimage.binary_fill_holes(_traced(gt[z] > 0)))
    assert np.array_equal(new[:zs[0]], pred[:zs[0]]) and np.array_equal(new[zs[2] + 1:], pred[zs[2] + 1:])
