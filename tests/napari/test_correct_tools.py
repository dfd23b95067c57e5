"""The Correct widget's correction tools on a real case crop: each tool through its public controls,
each application one undo step that restores the exact previous array, misuse refused untouched."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Labels
from napari.utils._test_utils import read_only_mouse_event
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks
from qtpy.QtCore import Qt

from napari_brats_seg._napari import autosave, edits
from napari_brats_seg._napari.layers import LayerSource, case_layer_data, labels_layer_data, source_of
from napari_brats_seg._napari.widgets._qt import add_layer_data
from napari_brats_seg.core.case import CaseInfo
from napari_brats_seg.core.edit import components, interpolate, logic, margins, masks
from napari_brats_seg.core.edit.grow import BACKGROUND_SEED, grow_region, paste_grown
from napari_brats_seg.core.io import read_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _crop import tumour_window

PLUGIN = "napari-brats-seg"
CROP = (56, 56, 48)


@pytest.fixture(scope="module")
def crop_case(real_case_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A 56 x 56 x 48 crop of a real BraTS 2018 case around its tumour, read as a Case."""
    case_id = real_case_dir.name
    sl, shift = tumour_window(real_case_dir / f"{case_id}_seg.nii.gz", CROP)
    out = tmp_path_factory.mktemp("tools_crop") / "Crop_2013_11_1"
    out.mkdir()
    for suffix in ("t1", "t1ce", "t2", "flair", "seg"):
        img = nib.load(str(real_case_dir / f"{case_id}_{suffix}.nii.gz"))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[sl], img.affine @ shift, img.header),
                 str(out / f"Crop_2013_11_1_{suffix}.nii.gz"))
    return read_case(out)


def _setup(make_napari_viewer, case):
    """A viewer with the crop, the Correct widget, and a prediction (a copy of the ground truth,
    which itself opens locked) as the layer being corrected."""
    viewer = make_napari_viewer()
    layers = add_layer_data(viewer, case_layer_data(case))
    gt = next(ly for ly in layers if isinstance(ly, Labels))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    src = replace(source_of(gt), role="prediction")
    pred = add_layer_data(viewer, [labels_layer_data(np.array(gt.data), src, f"model [{case.case_id}]")])[0]
    assert widget.layer() is pred and pred.editable and not gt.editable
    return viewer, pred, widget


def autosaved_then_undone(viewer, qtbot, layer, case_id: str, after: np.ndarray, before: np.ndarray) -> None:
    """The recovery file of ``layer`` holds ``after`` (the tool's result), then, once the layer is
    undone (one step, the exact ``before``), holds ``before``."""
    mgr = autosave.AutosaveManager.for_viewer(viewer)

    def saved(state: np.ndarray) -> bool:
        recs = [r for r in autosave.find_recoveries(case_id) if r.layer_name == layer.name]
        return bool(recs) and np.array_equal(recs[0].load(), state)

    mgr.flush(layer)
    qtbot.waitUntil(lambda: saved(after), timeout=20_000)
    layer.undo()
    assert np.array_equal(layer.data, before)
    mgr.flush(layer)
    qtbot.waitUntil(lambda: saved(before), timeout=20_000)


def _click(viewer, layer, point, kind: str = "mouse_press") -> None:
    ev = read_only_mouse_event(type=kind, position=tuple(layer.data_to_world(point)))
    {"mouse_press": mouse_press_callbacks, "mouse_release": mouse_release_callbacks}[kind](viewer, ev)


def _undone(gt: Labels, before: np.ndarray, steps: int = 1) -> bool:
    for _ in range(steps):
        gt.undo()
    return np.array_equal(gt.data, before)


def test_component_margin_smoothing_interpolation(make_napari_viewer, qtbot, crop_case, notifications) -> None:
    viewer, gt, widget = _setup(make_napari_viewer, crop_case)
    tools = widget.tools
    sp = source_of(gt).geometry.spacing
    original = np.array(gt.data, copy=True)
    p = tuple(int(v) for v in np.argwhere(original == 2)[0])

    qtbot.mouseClick(tools.pick_button, Qt.MouseButton.LeftButton)      # arm: a click acts on the component
    assert tools.click_mode == "component" and gt.mode == "pan_zoom"
    for action, expected in (("delete", components.delete_component(original, p)),
                             ("keep", components.keep_component(original, p)),
                             ("relabel", components.relabel_component(original, p, 1))):
        tools.component_action.setCurrentIndex(tools.component_action.findData(action))
        tools.relabel_class.setCurrentIndex(tools.relabel_class.findData(1))
        _click(viewer, gt, p)
        _click(viewer, gt, p, "mouse_release")
        assert np.array_equal(gt.data, expected), action
        assert _undone(gt, original)
    n_hist = len(gt._undo_history)
    _click(viewer, gt, (0, 0, 0))                 # background: refused, nothing changed or recorded
    assert np.array_equal(gt.data, original) and len(gt._undo_history) == n_hist
    assert any("no label under the cursor" in m for m in notifications())
    tools.pick_button.click()
    assert tools.click_mode is None

    tools.target_combo.setCurrentIndex(tools.target_combo.findData(3))
    for mm in (2.0, -1.0):
        tools.margin_mm.setValue(mm)
        tools.margin_button.click()
        assert np.array_equal(gt.data, margins.margin(original, 3, mm, sp))
        assert not np.array_equal(gt.data, original) and _undone(gt, original)
    tools.target_combo.setCurrentIndex(tools.target_combo.findData("WT"))
    for method in ("closing", "opening", "median"):
        tools.smooth_method.setCurrentIndex(tools.smooth_method.findData(method))
        tools.smooth_button.click()
        assert np.array_equal(gt.data, margins.smooth(original, "WT", method, 2.0, sp)), method
        assert _undone(gt, original)

    # Fill between slices: the ground truth's ET is on contiguous slices, nothing to fill (refused).
    tools.interp_class.setCurrentIndex(tools.interp_class.findData(3))
    tools.interp_button.click()
    assert np.array_equal(gt.data, original) and len(gt._undo_history) == n_hist
    assert any("no empty slice" in m for m in notifications())
    keys = interpolate.key_slices(original, 3)
    outlined = original.copy()
    gap = slice(int(keys[0]) + 1, int(keys[-1]))
    outlined[gap][outlined[gap] == 3] = 0                              # only the first and last slices
    edits.apply_edit(gt, outlined)
    tools.interp_button.click()
    assert np.array_equal(gt.data, interpolate.fill_between_slices(outlined, 3, 0, sp))
    assert (gt.data[gap] == 3).sum() > 0
    assert _undone(gt, outlined) and _undone(gt, original)

    # A tool's result is autosaved like a brush stroke (the recovery file holds it), and so is undo.
    tools.margin_button.click()
    assert not np.array_equal(gt.data, original)
    autosaved_then_undone(viewer, qtbot, gt, crop_case.case_id, np.array(gt.data, copy=True), original)


def test_grow_masked_painting_logic_and_refusals(make_napari_viewer, qtbot, crop_case, notifications) -> None:
    viewer, gt, widget = _setup(make_napari_viewer, crop_case)
    tools = widget.tools
    original = np.array(gt.data, copy=True)
    n_hist = len(gt._undo_history)

    # Grow from seeds: refused without strokes, then strokes of edema, ET and background.
    tools.grow.grow_button.click()
    assert any("paint seed strokes first" in m for m in notifications())
    tools.grow.seeds_button.click()
    seeds = tools.grow.seeds_layer
    assert seeds is not None and tools.layer() is gt      # the target stays the corrected layer
    assert tuple(seeds.units) == tuple(gt.units)           # mm like the case: no "inconsistent units" warning
    assert "paint strokes" in tools.status.text()          # the status says what to do next
    tools.grow.grow_button.click()
    assert np.array_equal(gt.data, original) and len(gt._undo_history) == n_hist
    z = int(np.argmax((original == 3).sum(axis=(1, 2))))
    strokes = np.zeros_like(original)
    for cls in (2, 3):
        ys, xs = np.nonzero(original[z] == cls)
        strokes[z, ys[::7], xs[::7]] = cls
    strokes[z, 0, :] = strokes[z, -1, :] = BACKGROUND_SEED
    with seeds.block_history():
        seeds.data_setitem(np.nonzero(strokes), strokes[np.nonzero(strokes)])
    tools.grow.grow_margin.setValue(4.0)
    tools.grow.grow_button.click()
    qtbot.waitUntil(lambda: tools.grow.grow_task is None, timeout=60_000)
    grown = np.array(gt.data, copy=True)
    assert not np.array_equal(grown, original) and (grown[strokes == 3] == 3).all()
    assert (grown[strokes == BACKGROUND_SEED] == 0).all()
    assert _undone(gt, original)
    tools.grow.grow_editable.setCurrentText("only background")   # Slicer's editable area: labels are kept
    tools.grow.grow_button.click()
    qtbot.waitUntil(lambda: tools.grow.grow_task is None, timeout=60_000)
    masked = np.array(gt.data, copy=True)
    labelled = original > 0
    assert np.array_equal(masked[labelled], original[labelled]) and (masked != original).any()
    assert _undone(gt, original)
    tools.grow.grow_editable.setCurrentText("everything")
    tools.grow.grow_auto.setChecked(True)                  # a new stroke grows again by itself
    with seeds.block_history():
        seeds.data_setitem(np.nonzero(strokes), strokes[np.nonzero(strokes)] * 0 + BACKGROUND_SEED)
        seeds.data_setitem(np.nonzero(strokes == 3), 3)
    qtbot.waitUntil(lambda: tools.grow.grow_task is None and not np.array_equal(gt.data, original), timeout=60_000)
    assert (gt.data == 2).sum() < (grown == 2).sum()  # the edema strokes became background
    assert _undone(gt, original)
    tools.grow.grow_auto.setChecked(False)

    # A re-grow replaces the previous grow rather than compounding it (as Slicer's preview): grow,
    # add strokes, grow again == one grow from the original with all the strokes; one undo step each.
    tools.grow.grow_editable.setCurrentText("only background")
    tools.grow.grow_button.click()
    qtbot.waitUntil(lambda: tools.grow.grow_task is None, timeout=60_000)
    first = np.array(gt.data, copy=True)
    taken = np.argwhere((first != original) & (np.asarray(seeds.data) == 0))[::5]   # grown: painted back
    assert len(taken) > 0
    with seeds.block_history():
        seeds.data_setitem(tuple(taken.T), BACKGROUND_SEED)
    tools.grow.grow_button.click()
    qtbot.waitUntil(lambda: tools.grow.grow_task is None, timeout=60_000)
    box, grown_all = grow_region(tools.grow._case_images(gt), np.asarray(seeds.data), tools.spacing(gt), margin_mm=4.0)
    assert (gt.data[tuple(taken.T)] == 0).all()          # compounding would have kept them labelled
    assert np.array_equal(gt.data, paste_grown(original, box, grown_all, (0,)))
    assert _undone(gt, first) and _undone(gt, original)
    tools.grow.grow_editable.setCurrentText("everything")

    # Intensity window picked from a voxel, then a masked brush stroke and a masked fill.
    flair = crop_case.images["flair"]
    tools.masked.mask_sequence.setCurrentIndex(tools.masked.mask_sequence.findData("flair"))
    p = tuple(int(v) for v in np.argwhere(original == 2)[len(np.argwhere(original == 2)) // 2])
    tools.masked.mask_pick_button.click()
    _click(viewer, gt, p)
    window = tools.masked.window()
    assert window[0] <= flair[p] <= window[1]
    assert window == pytest.approx(masks.window_at(flair, p), rel=1e-3)
    gt.selected_label = 3
    tools.masked.mask_brush_button.click()
    assert tools.click_mode == "brush" and not viewer.camera.mouse_pan
    _click(viewer, gt, p)
    move = read_only_mouse_event(type="mouse_move", is_dragging=True,
                                 position=tuple(gt.data_to_world((p[0], p[1] + 3, p[2]))))
    mouse_move_callbacks(viewer, move)
    _click(viewer, gt, (p[0], p[1] + 3, p[2]), "mouse_release")
    changed = gt.data != original
    assert changed.any() and (gt.data[changed] == 3).all()
    assert ((flair[changed] >= tools.masked.window()[0] - 1e-3) & (flair[changed] <= tools.masked.window()[1] + 1e-3)).all()
    assert np.unique(np.nonzero(changed)[0]).tolist() == [p[0]]        # the 2D brush stays in its slice
    assert _undone(gt, original)                                        # the stroke was ONE step
    tools.masked.mask_fill_button.click()
    _click(viewer, gt, p)
    assert np.array_equal(gt.data, masks.masked_fill(original, flair, p, 3, tools.masked.window(), 0))
    assert _undone(gt, original)
    tools.masked.mask_fill_button.click()

    # Between layers: union of a second layer of the same case; refused for another grid or case.
    other = original.copy()
    other[original == 3] = 0
    other[:4] = 1
    src = replace(source_of(gt), role="labels")        # a label map of the same case (not a new prediction)
    pred = add_layer_data(viewer, [labels_layer_data(other, src, "other labels")])[0]
    widget.layer_combo.set_layer(gt)                    # the newest working layer became the default
    tools.logic_source.set_layer(pred)
    tools.logic_op.setCurrentIndex(tools.logic_op.findData("subtract"))
    tools.logic_button.click()
    assert tools.layer() is gt
    assert np.array_equal(gt.data, logic.combine(original, other, "subtract"))
    assert _undone(gt, original)
    n_hist = len(gt._undo_history)
    foreign = LayerSource(info=CaseInfo(case_id="another case", geometry=src.geometry), role="labels")
    stranger = add_layer_data(viewer, [labels_layer_data(other, foreign, "other case")])[0]
    widget.layer_combo.set_layer(gt)
    tools.logic_source.set_layer(stranger)
    tools.logic_button.click()
    small = viewer.add_labels(np.zeros((4, 4, 4), np.uint8), name="small")
    widget.layer_combo.set_layer(gt)
    widget_layer = tools.layer()
    tools.logic_source.set_layer(small)
    tools.logic_button.click()
    assert widget_layer is gt and np.array_equal(gt.data, original) and len(gt._undo_history) == n_hist
    msgs = notifications()
    assert any("different cases" in m for m in msgs) and any("different grids" in m for m in msgs)

    # A read-only (reference) layer is refused by every tool.
    gt.editable = False
    tools.margin_button.click()
    tools.smooth_button.click()
    assert np.array_equal(gt.data, original)
    assert any("read-only" in m for m in notifications())


def test_napari_history_spans_slices_and_keeps_100_steps(make_napari_viewer) -> None:
    """napari 0.9 keeps one history per layer across slice changes (issue #1448 is fixed), 100 steps
    deep, each step storing only the changed voxels (indices and old values)."""
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((30, 20, 20), np.uint8))
    states = [np.array(layer.data, copy=True)]
    for i in range(120):
        new = states[-1].copy()
        new[i % 30, i // 30, :5] = 1 + i % 3
        edits.apply_edit(layer, new)
        viewer.dims.set_current_step(0, (i * 7) % 30)            # move to another slice between edits
        states.append(np.array(layer.data, copy=True))
    assert len(layer._undo_history) == 100
    step_bytes = [sum(a.nbytes for atom in item for a in atom[:2] if isinstance(a, np.ndarray))
                  + sum(x.nbytes for atom in item for x in atom[0]) for item in layer._undo_history]
    assert max(step_bytes) < 1_000                                   # 5 voxels changed: a few hundred bytes
    for back in range(1, 101):
        viewer.dims.set_current_step(0, back % 30)
        layer.undo()
        assert np.array_equal(layer.data, states[-1 - back]), back
    layer.undo()                                                     # the 101st step back is gone
    assert np.array_equal(layer.data, states[20])
    layer.redo()
    assert np.array_equal(layer.data, states[21])
