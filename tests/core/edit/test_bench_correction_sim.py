"""The simulated user of ``bench/bench_correction.py`` on synthetic cases: which tool it picks, and that
it acts only where the error regions say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from correction_sim import (
    brush_step,
    choose,
    interior_point,
    largest_error,
    region_dice,
    tool_step,
)

SPACING = (1.0, 1.0, 1.0)


def _ball(shape, centre, radius):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((x - c) ** 2 for x, c in zip(g, centre)) <= radius ** 2


def _case():
    """Ground truth: an edema ball with a necrotic core; images where the tumour is bright."""
    shape = (40, 48, 48)
    gt = np.zeros(shape, np.uint8)
    gt[_ball(shape, (20, 16, 16), 10)] = 2
    gt[_ball(shape, (20, 16, 16), 4)] = 1
    img = np.where(gt > 0, 2.0, 1.0).astype(np.float32)
    return gt, {"flair": img, "t1ce": img}


def _step(pred, gt, images, history=None):
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    return err, p, depth, tool_step(pred, gt, p, err, depth, images, SPACING, 15.0,
                                    history if history is not None else [])


def test_far_false_positive_blob_is_deleted_in_one_click() -> None:
    gt, images = _case()
    pred = gt.copy()
    pred[28:36, 30:40, 30:40] = 2                      # a blob far from the tumour
    pred[30:34, 33:37, 33:37] = 3                      # with an enhancing part: two classes
    err, p, _, (out, tool) = _step(pred, gt, images)
    assert err.kind == "fp" and err.cls == 2 and err.mask[p]
    assert tool == "delete-tumour"
    assert np.array_equal(out, gt) and region_dice(out, gt) == {"WT": 1.0, "TC": 1.0, "ET": 1.0}


def test_component_of_the_wrong_class_is_relabelled() -> None:
    gt, images = _case()
    gt[28:36, 30:40, 30:40] = 1                         # a second, necrotic lesion ...
    pred = gt.copy()
    pred[28:36, 30:40, 30:40] = 3                       # ... predicted enhancing
    err, p, _, (out, tool) = _step(pred, gt, images)
    assert (err.kind, tool) in (("fp", "relabel"), ("fn", "relabel"))
    assert np.array_equal(out, gt)


def test_thin_missed_rim_is_grown_by_a_margin_once() -> None:
    gt, images = _case()
    pred = gt.copy()
    pred[(gt == 2) & ~_ball(gt.shape, (20, 16, 16), 8)] = 0    # the outer 2-voxel rim missed
    history: list[tuple[str, int]] = []
    err, p, depth, (out, tool) = _step(pred, gt, images, history)
    assert err.kind == "fn" and err.cls == 2 and depth <= 3
    assert tool == "grow" and history == [("grow", 2)]
    assert region_dice(out, gt)["WT"] > region_dice(pred, gt)["WT"]
    # the user does not undo a margin with the opposite margin
    assert choose(pred, gt, err, p, depth, [("shrink", 2)])[0] != "grow"


def test_missed_part_inside_gets_a_masked_dab_inside_the_region() -> None:
    gt, images = _case()
    pred = gt.copy()
    pred[_ball(gt.shape, (20, 16, 16), 4)] = 2           # the core missed (labelled edema)
    err, p, _, (out, tool) = _step(pred, gt, images)
    assert err.cls == 1 and tool == "masked"
    changed = out != pred
    assert changed.any() and (gt[changed] == 1).mean() > 0.7   # the dab is sized to the error region


def test_brush_paints_one_disc_in_the_slice_of_the_point() -> None:
    gt, _ = _case()
    pred = np.zeros_like(gt)
    err = largest_error(pred, gt)
    p, _ = interior_point(err.mask)
    out, tool = brush_step(pred, gt, p, radius=3)
    changed = np.argwhere(out != pred)
    assert tool == "brush" and (changed[:, 0] == p[0]).all() and len(changed) == 29   # a radius-3 disc
    assert (out[out > 0] == gt[p]).all()
