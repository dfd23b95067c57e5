"""The napari-free helpers of ``scripts/correction_screenshots.py``: where the session acts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "bench")]

from correction_screenshots import _false_component, _missed  # noqa: E402


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
