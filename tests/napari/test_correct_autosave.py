"""Correct widget (paint tools, clean-ups as single undo steps) and autosave recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt

from napari_brats_seg._napari import autosave, edits
from napari_brats_seg._napari.layers import case_layer_data, source_of
from napari_brats_seg._napari.widgets._qt import add_layer_data

PLUGIN = "napari-brats-seg"


def _open(viewer, case):
    layers = add_layer_data(viewer, case_layer_data(case))
    return next(ly for ly in layers if isinstance(ly, Labels))


def test_edit_functions_on_hand_made_maps() -> None:
    lab = np.zeros((3, 9, 9), np.uint8)
    lab[1, 2:7, 2:7] = 3          # an enhancing ring around a hole of background and edema
    lab[1, 4, 4] = 0
    lab[1, 3, 4] = 2
    lab[0, 0, 0] = 2              # a one-voxel island
    ring = np.zeros((1, 7, 7), np.uint8)
    ring[0, 1:6, 1:6] = 3
    ring[0, 2:5, 2:5] = 0
    ring[0, 3, 3] = 2
    out = edits.nest_regions(ring)
    assert (out[0, 2:5, 2:5] == 1).all()            # enclosed by the core: necrotic
    assert np.array_equal(edits.nest_regions(out), out)  # idempotent
    assert edits.remove_small_islands(lab, 2)[0, 0, 0] == 0
    assert edits.remove_small_islands(lab, 2)[1, 2, 2] == 3
    filled = edits.fill_holes_slicewise(ring, 3)
    assert filled[0, 2, 2] == 3 and filled[0, 3, 3] == 2   # background filled, edema kept


def test_correct_widget_tools_undo_and_autosave(make_napari_viewer, qtbot, small_case, data_dir: Path) -> None:
    viewer = make_napari_viewer()
    gt = _open(viewer, small_case)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    widget.autosave.set_delay(50)
    assert widget.layer() == gt
    # The ground truth is a locked reference: unlock it on purpose (the question answered "Unlock").
    assert widget.session.is_locked(gt) and not gt.editable
    widget.session.ask = lambda title, text, choices: "Unlock"
    qtbot.mouseClick(widget.unlock_button, Qt.MouseButton.LeftButton)
    assert not widget.session.is_locked(gt) and gt.editable
    # Widgets get public-API proxies of the viewer; they still share the viewer's one autosave manager.
    _, load = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    assert autosave.AutosaveManager.for_viewer(viewer) is widget.autosave
    assert autosave.AutosaveManager.for_viewer(load.viewer) is widget.autosave

    qtbot.mouseClick(widget.paint_buttons[2], Qt.MouseButton.LeftButton)
    assert gt.selected_label == 2 and gt.mode == "paint"
    widget.brush_3d.setChecked(True)
    assert gt.n_edit_dimensions == 3
    widget.brush_3d.setChecked(False)
    assert gt.n_edit_dimensions == 2

    original = np.array(gt.data, copy=True)
    # Add two specks far from the tumour, then remove them in ONE undoable step.
    with gt.block_history():
        gt.data_setitem((np.array([1, 2]), np.array([1, 60]), np.array([1, 60])), 2)
    specked = np.array(gt.data, copy=True)
    assert not np.array_equal(specked, original)
    widget.island_size.setValue(10)
    qtbot.mouseClick(widget.islands_button, Qt.MouseButton.LeftButton)
    assert gt.data[1, 1, 1] == 0 and gt.data[2, 60, 60] == 0
    assert np.array_equal(gt.data, edits.remove_small_islands(specked, 10))
    gt.undo()   # undoes the island removal: the specks are back
    assert gt.data[1, 1, 1] == 2 and gt.data[2, 60, 60] == 2
    gt.undo()   # undoes the specks
    assert np.array_equal(gt.data, original)

    qtbot.mouseClick(widget.nest_button, Qt.MouseButton.LeftButton)
    nested = np.array(gt.data, copy=True)
    assert np.array_equal(nested, edits.nest_regions(original))
    qtbot.mouseClick(widget.undo_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(gt.data, original)

    qtbot.mouseClick(widget.paint_buttons[1], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.fill_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(gt.data, edits.fill_holes_slicewise(original, 1))
    gt.undo()
    assert np.array_equal(gt.data, original)

    # Every edit schedules an autosave; the recovery file holds the layer's current data.
    rec_file = autosave.recovery_path("synthetic-small", gt.name)
    qtbot.waitUntil(lambda: rec_file.exists() and np.array_equal(
        autosave.find_recoveries("synthetic-small")[0].load(), gt.data), timeout=10_000)
    assert rec_file.is_relative_to(data_dir)


def test_recovery_offered_when_case_reopened(make_napari_viewer, qtbot, small_case, notifications) -> None:
    first = make_napari_viewer()
    gt = _open(first, small_case)
    mgr = autosave.AutosaveManager.for_viewer(first)
    assert mgr.session.unlock(gt, confirm=False)
    painted = np.array(gt.data, copy=True)
    painted[10:14, 10:14, 10:14] = 3
    edits.apply_edit(gt, painted)
    mgr.flush(gt)
    qtbot.waitUntil(lambda: len(mgr.saved) == 1, timeout=10_000)
    # "Crash": the first viewer goes away without saving; a new one opens the case again.
    second = make_napari_viewer()
    _, widget = second.window.add_plugin_dock_widget(PLUGIN, "Correct")
    _open(second, small_case)
    offered = widget.autosave.offered
    assert [r.layer_name for r in offered] == [gt.name]
    assert any(m.startswith("Unsaved labels were found.") for m in notifications())
    restored = autosave.restore_recovery(second, offered[0])
    assert isinstance(restored, Labels) and np.array_equal(restored.data, painted)
    assert source_of(restored).case_id == "synthetic-small"
    np.testing.assert_allclose(restored.scale, second.layers[0].scale)
    # Saving through the Save widget removes the recovery file.
    assert autosave.discard_recovery("synthetic-small", gt.name)
    assert autosave.find_recoveries("synthetic-small") == []
