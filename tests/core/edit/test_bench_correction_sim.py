"""The simulated user of ``bench/bench_correction.py`` on synthetic cases: which tool it picks, and that
it acts only where the error regions say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from correction_actions import key_slices, seed_strokes
from correction_sim import (
    brush_step,
    choose,
    futile,
    gave_up,
    interior_point,
    largest_error,
    region_dice,
    tool_step,
    wrong_near,
)
from correction_strokes import stroke_inside, stroke_outside

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


def _step(pred, gt, images, history=None, stack=None, state=None):
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    steps = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, history if history is not None else [],
                      stack=stack, state=state)
    out, tool, _ = steps[-1]
    return err, p, depth, (out, tool)


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


def test_brush_stroke_is_one_capped_drag_in_the_slice_of_the_point() -> None:
    gt, _ = _case()
    pred = np.zeros_like(gt)
    err = largest_error(pred, gt)
    p, _ = interior_point(err.mask)
    [(out, tool, _)] = brush_step(pred, gt, p, err, radius=3, cap_mm=12.0)
    changed = np.argwhere(out != pred)
    assert tool == "brush" and (changed[:, 0] == p[0]).all()           # one slice
    assert (out[out > 0] == gt[p]).all()
    extent = changed[:, 1:].max(0) - changed[:, 1:].min(0) + 1
    assert extent.max() <= 12 + 2 * 3 + 1 and extent.max() > 2 * 3 + 1   # a drag, not a dab, and capped
    assert 29 < len(changed) < (12 + 7) * 7                              # more than one radius-3 disc


def test_strokes_inside_and_just_outside_a_region() -> None:
    region = np.zeros((40, 40), bool)
    region[10:30, 5:35] = True
    other = ~region
    inside = stroke_inside(region, (20, 20), 3, 20.0, fit=True)
    assert inside.any() and not (inside & ~region).any()               # a fitted seed stroke stays inside
    outside = stroke_outside(region, other, 2, 20.0)
    assert outside.any() and not (outside & region).any() and not (outside & ~other).any()
    assert key_slices(np.ones((40, 4, 4), bool), (1.0, 1.0, 1.0)) == [4, 20, 35]   # 3 slices over 40 mm


def _missed_edema():
    """Truth: an edema ball around a core; prediction: the core only (the edema missed)."""
    gt, images = _case()
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)
    stack = np.stack([images["flair"]] * 4)
    return gt, pred, images, stack


def test_missed_bright_edema_is_grown_from_a_few_strokes(monkeypatch) -> None:
    import correction_sim

    monkeypatch.setattr(correction_sim, "POLICY", "outline")     # the first round's user: grow, else outline
    gt, pred, images, stack = _missed_edema()
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    assert choose(pred, gt, err, p, depth, [], images)[0] == "seeds"
    state: dict = {}
    steps = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, [], stack=stack, state=state)
    strokes = seed_strokes(gt, err, 2, 0, SPACING)
    assert len(steps) == 1 + len(strokes) <= 7          # new seeds layer + 2 strokes a key slice
    out = steps[-1][0]
    assert region_dice(pred, gt)["WT"] < 0.2 and region_dice(out, gt)["WT"] > 0.9
    assert (out[gt == 1] == 1).all()                     # "only background" may change: the core is kept
    if (left := largest_error(out, gt)) is not None and choose(out, gt, left, *interior_point(left.mask),
                                                               [], images)[0] == "seeds":
        more = tool_step(out, gt, *interior_point(left.mask)[:1], left, 1.0, images, SPACING, 15.0, [],
                         stack=stack, state=state)
        assert [t for _, t, _ in more] == ["seeds:stroke"] * len(more) <= 2 * ["seeds:stroke"]  # one more slice


def test_missed_faint_edema_is_outlined_and_filled_between_slices(monkeypatch) -> None:
    import correction_sim

    monkeypatch.setattr(correction_sim, "POLICY", "outline")
    gt, pred, images, stack = _missed_edema()
    flat = {k: np.ones_like(v) for k, v in images.items()}      # the edema does not stand out
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    assert choose(pred, gt, err, p, depth, [], flat)[0] == "outline"
    steps = tool_step(pred, gt, p, err, depth, flat, SPACING, 15.0, [], stack=stack)
    keys = key_slices(err.mask, SPACING, minimum=3)
    assert len(steps) == 2 * len(keys) + 2                     # drag + fill per key slice, between, union
    assert all(out is pred for out, _, _ in steps[:-1])        # the scratch layer: labels unchanged until union
    assert region_dice(steps[-1][0], gt)["WT"] > 0.7


def _overflowing_edema():
    """Truth: the edema ball of ``_case``; prediction: an edema 4 voxels too wide on one side,
    over the ball's whole height, on an image where the tumour does not stand out."""
    gt, images = _case()
    pred = gt.copy()
    wide = _ball(gt.shape, (20, 16, 20), 10) & ~_ball(gt.shape, (20, 16, 16), 10)
    pred[wide] = 2
    flat = {k: np.ones_like(v) for k, v in images.items()}
    return gt, pred, flat, np.stack([flat["flair"]] * 4)


def test_an_overflow_at_the_border_is_redrawn_slice_by_slice(monkeypatch) -> None:
    import correction_sim

    monkeypatch.setattr(correction_sim, "POLICY", "redraw-any")
    gt, pred, flat, stack = _overflowing_edema()
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    assert err.kind == "fp" and err.cls == 2 and err.size > 1000     # a crescent, not a shell: no margin
    assert choose(pred, gt, err, p, depth, [], flat)[0] == "redraw"
    state: dict = {}
    steps = tool_step(pred, gt, p, err, depth, flat, SPACING, 15.0, [], stack=stack, state=state)
    assert [t for _, t, _ in steps] == ["redraw:new-layer", "redraw:outline"]   # one drag: one part
    out = steps[-1][0]
    assert np.array_equal(out[p[0]] > 0, gt[p[0]] > 0)                # the outlined slice is right
    assert np.array_equal(out[np.arange(40) != p[0]], pred[np.arange(40) != p[0]])   # only that slice
    # A second outline on another slice redraws everything between the two: no new layer.
    err2 = largest_error(out, gt)
    p2, depth2 = interior_point(err2.mask)
    more = tool_step(out, gt, p2, err2, depth2, flat, SPACING, 15.0, [], stack=stack, state=state)
    assert [t for _, t, _ in more] == ["redraw:outline"] and p2[0] != p[0]
    lo, hi = sorted((p[0], p2[0]))
    assert region_dice(more[-1][0][lo:hi + 1], gt[lo:hi + 1])["WT"] > 0.97
    assert region_dice(more[-1][0], gt)["WT"] > region_dice(out, gt)["WT"] > region_dice(pred, gt)["WT"]


def test_the_user_gives_up_on_a_region_the_tool_does_not_change() -> None:
    gt, images = _case()
    pred = gt.copy()
    pred[30:36, 30:40, 30:40] = 2                       # a blob ...
    pred[20, 16, 16] = 0                                # ... and a one-voxel miss
    err = largest_error(pred, gt)
    before = wrong_near(err, pred, gt)
    tries: list[list] = []
    assert not gave_up(err, futile(err, before, pred, gt), tries)   # nothing changed once: the user tries again
    assert gave_up(err, futile(err, before, pred, gt), tries)       # twice: skipped from now on
    assert largest_error(pred, gt, [err.mask]).size == 1
    fixed = pred.copy()
    fixed[err.mask] = 0
    assert not gave_up(err, futile(err, before, fixed, gt), [])     # the blob gone: progress


def test_a_core_with_its_classes_confused_is_split_by_enhancement_in_two_interactions() -> None:
    gt, images = _case()
    gt[_ball(gt.shape, (20, 16, 16), 9) & (gt == 2)] = 3          # an enhancing rim around the necrosis
    t1ce = np.where(gt == 3, 3.0, np.where(gt == 1, 0.5, 1.0)).astype(np.float32)
    images = {"flair": images["flair"], "t1ce": t1ce}
    pred = gt.copy()
    pred[(gt == 3) & (np.arange(40)[:, None, None] >= 20)] = 1     # the rim's lower half: necrosis
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    history: list[tuple[str, int]] = []
    assert choose(pred, gt, err, p, depth, history, images)[0] == "split-core"
    steps = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, history, stack=np.stack([t1ce] * 4))
    assert [t for _, t, _ in steps] == ["split-core:arm", "split-core"]
    assert np.array_equal(steps[-1][0], gt)
    assert choose(pred, gt, err, p, depth, history, images)[0] != "split-core"    # once


def test_a_reader_stops_picking_a_tool_that_twice_did_nothing(monkeypatch) -> None:
    import correction_sim

    monkeypatch.setattr(correction_sim, "POLICY", "outline")
    gt, pred, images, stack = _missed_edema()
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    state: dict = {}
    for _ in range(2):                                  # two actions that left the region as it was
        correction_sim.note_futile(state, "seeds", futile(err, wrong_near(err, pred, gt), pred, gt))
    assert state["futile"] == {"seeds": 2}
    assert choose(pred, gt, err, p, depth, [], images)[0] == "seeds"
    assert choose(pred, gt, err, p, depth, [], images, frozenset({"seeds"}))[0] == "outline"
    steps = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, [], stack=stack, state=state)
    assert steps[0][1].startswith("outline")
    correction_sim.note_futile(state, "outline", futile(err, wrong_near(err, pred, gt), gt, gt))   # fixed
    assert "outline" not in state["futile"]


def test_a_generous_border_is_pulled_in_by_one_release_of_the_confidence_slider() -> None:
    from correction_sim import confidence_release

    gt, images = _case()
    g = np.ogrid[tuple(slice(0, n) for n in gt.shape)]
    r = np.sqrt(sum((x - c) ** 2 for x, c in zip(g, (20, 16, 16))))
    prob = 1.0 / (1.0 + np.exp((r - 13.0) / 1.5))      # the model's 0.5 lies 3 voxels outside the truth
    pred = gt.copy()
    pred[(prob >= 0.5) & (gt == 0) & (g[2] >= 16)] = 2     # labelled on one side only: no shell, no margin
    with_p = {**images, "wt_probability": prob.astype(np.float32)}
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    history: list[tuple[str, int]] = []
    assert choose(pred, gt, err, p, depth, history, images)[0] != "confidence"    # no probability: no slider
    assert choose(pred, gt, err, p, depth, history, with_p)[0] == "confidence"
    steps = tool_step(pred, gt, p, err, depth, with_p, SPACING, 15.0, history, stack=np.stack([images["flair"]] * 4))
    assert [t for _, t, _ in steps] == ["confidence"]                               # one interaction
    assert region_dice(steps[0][0], gt)["WT"] > 0.95 > region_dice(pred, gt)["WT"]
    assert choose(steps[0][0], gt, err, p, depth, history, with_p)[0] != "confidence"   # once
    same, _, _ = confidence_release(gt, gt, prob.astype(np.float32))
    assert np.array_equal(same, gt)                     # nothing better than the truth: left as it is


def test_a_reader_watching_the_preview_stops_painting_a_grow_that_shows_no_progress(monkeypatch) -> None:
    import correction_actions
    import correction_sim

    monkeypatch.setattr(correction_sim, "POLICY", "outline")
    gt, pred, images, stack = _missed_edema()
    err = largest_error(pred, gt)
    p, depth = interior_point(err.mask)
    keys = seed_strokes(gt, err, 2, 0, SPACING)
    assert len(keys) > 2                                 # several key slices to paint
    good = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, [], stack=stack, state={})
    assert len(good) == 1 + len(keys)                    # a grow that works: every key slice, as before
    monkeypatch.setattr(correction_sim, "FUTILE", 1.01)  # a reader who sees no progress in any grow
    steps = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, [], stack=stack, state={})
    assert [t for _, t, _ in steps] == ["seeds:new-layer", "seeds:stroke", "seeds:stroke"]   # one pair, then stop
    monkeypatch.setattr(correction_actions, "PREVIEW", False)
    blind = tool_step(pred, gt, p, err, depth, images, SPACING, 15.0, [], stack=stack, state={})
    assert len(blind) == 1 + len(keys)                   # every key slice painted
