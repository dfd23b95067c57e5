"""Data safety of a correction session (issue 13): locked reference, undo seen by autosave and Score,
the model output kept, results that do not pile up, clear notifications, one case at a time, keys."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt

from napari_brats_seg._napari import autosave
from napari_brats_seg._napari.layers import case_layer_data, labels_layer_data, source_of
from napari_brats_seg._napari.session import Session
from napari_brats_seg._napari.widgets._qt import add_layer_data

PLUGIN = "napari-brats-seg"


def _open(viewer, case) -> Labels:
    layers = add_layer_data(viewer, case_layer_data(case))
    return next(ly for ly in layers if isinstance(ly, Labels))


def _prediction(viewer, case=None, data=None, name="model", case_id=None) -> Labels:
    """A labels layer of a case as the Segment widget adds it (role ``prediction``)."""
    case_id = case_id or case.case_id
    src = next(s for ly in viewer.layers if (s := source_of(ly)) is not None and s.case_id == case_id)
    arr = np.array(case.ground_truth if data is None else data, dtype=np.uint8, copy=True)
    d, kwargs, _ = labels_layer_data(arr, replace(src, role="prediction"), f"{name} [{case_id}]")
    return viewer.add_labels(d, **kwargs)


def _segment(qtbot, seg, model) -> Labels:
    seg.add_model(model)
    qtbot.mouseClick(seg.run_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(seg.task.done, timeout=120_000):
        pass
    return seg.last_layer


def _brush(layer: Labels, centre: tuple[int, int, int], label: int) -> None:
    """A brush stroke through the layer's public paint API (one undo step, a paint event)."""
    layer.brush_size = 3
    layer.paint(centre, label)


# -- 1. the reference is locked; the tools default to the newest prediction --------------------
def test_tools_default_to_newest_prediction_and_reference_is_locked(
        make_napari_viewer, qtbot, tiny_case, tiny_model, one_torch_thread, notifications) -> None:
    viewer = make_napari_viewer()
    gt = _open(viewer, tiny_case)
    gt_data = np.array(gt.data, copy=True)
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, correct = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    _, score = viewer.window.add_plugin_dock_widget(PLUGIN, "Score")
    _, save = viewer.window.add_plugin_dock_widget(PLUGIN, "Save")
    # Before any model run: the ground truth is shown locked; its paint buttons refuse; Save has no default.
    assert not gt.editable and correct.session.is_locked(gt)
    assert not correct.unlock_button.isHidden() and "Locked" in correct.lock_label.text()
    qtbot.mouseClick(correct.paint_buttons[2], Qt.MouseButton.LeftButton)
    assert gt.mode != "paint" and "locked" in correct.status.text()
    assert save.layer_combo.layer() is None

    pred = _segment(qtbot, seg, tiny_model())
    assert correct.layer() == pred and save.layer_combo.layer() == pred
    assert score.reference_combo.layer() == gt and score.prediction_combo.layer() == pred
    assert correct.unlock_button.isHidden()
    # A paint button makes the PREDICTION the active layer in paint mode.
    qtbot.mouseClick(correct.paint_buttons[2], Qt.MouseButton.LeftButton)
    assert viewer.layers.selection.active == pred and pred.mode == "paint" and pred.selected_label == 2
    # An edit that still reaches the reference (its paint API) is reverted, with a message.
    gt.paint((16, 24, 24), 3)
    qtbot.waitUntil(lambda: np.array_equal(gt.data, gt_data), timeout=5_000)
    assert any(m.startswith("This layer is a locked reference.") for m in notifications())
    # Clean-ups on the reference are refused too.
    correct.layer_combo.set_layer(gt)
    assert correct.run_edit("nest", lambda a: np.zeros_like(a)) == 0 and np.array_equal(gt.data, gt_data)
    # Unlocking asks: "Cancel" keeps it locked, "Unlock" makes it editable.
    asked = []
    correct.session.ask = lambda title, text, choices: asked.append(text) or "Cancel"
    qtbot.mouseClick(correct.unlock_button, Qt.MouseButton.LeftButton)
    assert asked and not gt.editable
    correct.session.ask = lambda title, text, choices: "Unlock"
    qtbot.mouseClick(correct.unlock_button, Qt.MouseButton.LeftButton)
    assert gt.editable and not correct.session.is_locked(gt)
    gt.paint((16, 24, 24), 3)
    assert not np.array_equal(gt.data, gt_data)
    # Score on its defaults compares the ground truth with the prediction, not with itself.
    qtbot.mouseClick(score.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: score.computed == 1, timeout=20_000)
    assert score.results["WT"]["dice"] < 1.0


# -- 2. undo and redo are seen by autosave and Score; autosave whichever widget is open ----------
def test_undo_redo_reach_autosave_and_score(make_napari_viewer, qtbot, small_case) -> None:
    viewer = make_napari_viewer()
    gt = _open(viewer, small_case)
    _, correct = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    _, score = viewer.window.add_plugin_dock_widget(PLUGIN, "Score")
    correct.autosave.set_delay(30)
    pred = _prediction(viewer, small_case)
    assert correct.layer() == pred
    rec = autosave.recovery_path(small_case.case_id, pred.name)

    def recovered_is(arr):
        return rec.exists() and correct.autosave.pending == 0 and np.array_equal(np.load(rec)["labels"], arr)

    qtbot.mouseClick(score.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: score.computed == 1, timeout=20_000)
    assert score.results["WT"]["dice"] == 1.0
    _brush(pred, (5, 5, 5), 2)                 # a speck far from the tumour
    specked = np.array(pred.data, copy=True)
    correct.island_size.setValue(50)
    qtbot.mouseClick(correct.islands_button, Qt.MouseButton.LeftButton)
    cleaned = np.array(pred.data, copy=True)
    assert not np.array_equal(cleaned, specked)
    qtbot.waitUntil(lambda: recovered_is(cleaned), timeout=10_000)
    n = score.computed
    qtbot.mouseClick(correct.undo_button, Qt.MouseButton.LeftButton)   # the speck comes back
    assert np.array_equal(pred.data, specked)
    qtbot.waitUntil(lambda: recovered_is(specked), timeout=10_000)      # autosave follows the undo
    qtbot.waitUntil(lambda: score.computed > n, timeout=20_000)         # and so does Score
    assert score.results["WT"]["dice"] < 1.0
    n = score.computed
    qtbot.mouseClick(correct.redo_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(pred.data, cleaned)
    qtbot.waitUntil(lambda: recovered_is(cleaned), timeout=10_000)
    qtbot.waitUntil(lambda: score.computed > n, timeout=20_000)
    assert gt.editable is False


def test_autosave_runs_when_only_segment_is_opened(make_napari_viewer, qtbot, small_case) -> None:
    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _open(viewer, small_case)
    seg.session.autosave.set_delay(30)
    assert autosave.AutosaveManager.for_viewer(viewer) is seg.session.autosave
    pred = _prediction(viewer, small_case)
    _brush(pred, (5, 5, 5), 2)
    rec = autosave.recovery_path(small_case.case_id, pred.name)
    qtbot.waitUntil(lambda: rec.exists() and seg.session.autosave.pending == 0
                    and np.array_equal(np.load(rec)["labels"], pred.data), timeout=10_000)


def test_reader_starts_the_session(make_napari_viewer, qtbot, small_case_dir: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open(str(small_case_dir), plugin=PLUGIN, stack=False)
    gt = next(ly for ly in viewer.layers if isinstance(ly, Labels))
    assert not gt.editable and Session.for_viewer(viewer).is_locked(gt)


# -- 3. the untouched model output is kept, scored against its copy, and can be reverted ---------
def test_model_output_kept_scored_and_reverted(make_napari_viewer, qtbot, small_case_nogt) -> None:
    viewer = make_napari_viewer()
    add_layer_data(viewer, case_layer_data(small_case_nogt))
    _, correct = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    _, score = viewer.window.add_plugin_dock_widget(PLUGIN, "Score")
    model = np.zeros(small_case_nogt.shape, np.uint8)
    model[20:30, 20:40, 20:40] = 2
    pred = _prediction(viewer, small_case_nogt, model)
    assert not correct.revert_button.isHidden() and correct.revert_button.isEnabled()
    n_layers = len(viewer.layers)
    _brush(pred, (25, 30, 30), 3)
    kept = correct.session.original_layer(pred)
    assert kept is not None and len(viewer.layers) == n_layers + 1
    assert not kept.visible and not kept.editable and kept.name.startswith("model output")
    assert np.array_equal(kept.data, model)
    assert viewer.layers.selection.active == pred        # painting goes on in the prediction
    # Without a ground truth, Score compares the model output with its corrected copy.
    assert score.reference_combo.layer() == kept and score.prediction_combo.layer() == pred
    qtbot.mouseClick(score.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: score.computed == 1, timeout=20_000)
    assert score.results["ET"]["volume_pred_ml"] > 0 and score.results["ET"]["volume_gt_ml"] == 0
    edited = np.array(pred.data, copy=True)
    qtbot.mouseClick(correct.revert_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(pred.data, model)
    qtbot.mouseClick(correct.undo_button, Qt.MouseButton.LeftButton)     # the revert is one undo step
    assert np.array_equal(pred.data, edited)


# -- 7. a new prediction hides the earlier ones; names say what produced them -------------------
def test_new_prediction_hides_earlier_and_is_named(make_napari_viewer, qtbot, tiny_case, tiny_model,
                                                   one_torch_thread) -> None:
    viewer = make_napari_viewer()
    gt = _open(viewer, tiny_case)
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    first = _segment(qtbot, seg, tiny_model())
    assert first.visible and first.name == "tiny [synthetic-tiny]"
    seg.tta.setChecked(True)
    seg.min_component.setValue(20)
    seg.et_min.setValue(5)
    second = _segment(qtbot, seg, tiny_model())
    assert second.name == "tiny, TTA, islands<20, ET<5->NCR [synthetic-tiny]"
    assert second.visible and not first.visible and first in viewer.layers
    assert 0.4 <= second.opacity <= 0.8 and not gt.visible and gt in viewer.layers


# -- 11. notifications: short sentences, no reprs, the path in the details ----------------------
def test_notifications_are_plain_and_name_the_path(make_napari_viewer, qtbot, small_case, tmp_path: Path,
                                                   notifications) -> None:

    viewer = make_napari_viewer()
    _open(viewer, small_case)
    pred = _prediction(viewer, small_case)
    _, save = viewer.window.add_plugin_dock_widget(PLUGIN, "Save")
    assert save.layer_combo.layer() == pred
    # A folder that is a file (every user meets this error; root writes into read-only folders).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    save.path_edit.setText(str(blocker / "out.nii.gz"))
    qtbot.mouseClick(save.save_button, Qt.MouseButton.LeftButton)
    msg = notifications()[-1]
    first, _, details = msg.partition("\n")
    assert first == "The labels were not saved." and str(blocker) in details and "folder" in details
    assert "Errno" not in msg and "Traceback" not in msg and save.last_saved is None
    locked = tmp_path / "read-only"
    locked.mkdir()
    os.chmod(locked, 0o500)
    if not os.access(locked, os.W_OK):
        save.path_edit.setText(str(locked / "out.nii.gz"))
        qtbot.mouseClick(save.save_button, Qt.MouseButton.LeftButton)
        first, _, details = notifications()[-1].partition("\n")
        assert first == "The labels were not saved." and str(locked) in details and "denied" in details


def test_recovery_offer_has_no_source_repr_and_a_restore_button(make_napari_viewer, qtbot, small_case,
                                                                notifications) -> None:
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from napari.utils.notifications import notification_manager

    autosave.write_recovery(np.asarray(small_case.ground_truth), small_case.case_id, "model [x]",
                            role="prediction")
    viewer = make_napari_viewer()
    Session.for_viewer(viewer)
    _open(viewer, small_case)
    note = notification_manager.records[-1]
    assert str(note.message).split("\n")[0] == "Unsaved labels were found."
    assert note.source is None and [a[0] for a in note.actions] == ["Restore"]
    toast = NapariQtNotification.from_notification(note)
    qtbot.addWidget(toast)
    assert toast.source_label.text() == ""     # no "Source: <napari.utils.notifications...>"
    # The button restores the recovered labels as a prediction of the case.
    note.actions[0][1](None)
    restored = viewer.layers[-1]
    assert restored.name == "model [x]" and source_of(restored).role == "prediction"


def test_header_claiming_32767_cubed_gives_a_message(load_viewer, tmp_path: Path,
                                                     notifications) -> None:
    import nibabel as nib

    case = tmp_path / "Big_000"
    case.mkdir()
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((32767, 32767, 32767))
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.eye(4), 1)
    for m in ("t1", "t1ce", "t2", "flair"):   # a 348-byte header that claims 140 TB of voxels
        (case / f"Big_000_{m}.nii").write_bytes(hdr.binaryblock + b"\0" * 1004)
    viewer, _ = load_viewer(case, timeout_ms=30_000)
    first, _, details = notifications()[-1].partition("\n")
    assert first == "Loading Big_000 failed." and details.strip()
    assert len(viewer.layers) == 0


# -- 12. one case at a time ---------------------------------------------------------------------
def test_second_case_closes_or_hides_the_first(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    from napari_brats_seg.core.synth import write_cases

    a_dir, b_dir = write_cases(tmp_path / "cases", 2, seed=5, layout="brats2021", shape=(48, 48, 32))
    viewer = make_napari_viewer()
    _, load = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    session = load.session

    def load_case(folder: Path):
        load.inspect(str(folder))
        task = load.load()
        if task is not None:
            with qtbot.waitSignal(task.done, timeout=30_000):
                pass
        return task

    load_case(a_dir)
    case_a = session.current_case
    load_case(b_dir)                         # nothing unsaved in A: it is closed without a question
    case_b = session.current_case
    assert case_b != case_a and not session.case_layers(case_a) and session.case_layers(case_b)
    # B gets a prediction with an edit: loading A again asks first.
    pred = _prediction(viewer, data=np.zeros(viewer.layers[-1].data.shape, np.uint8), case_id=case_b)
    _brush(pred, (5, 5, 5), 2)
    answers = iter(["Cancel", "Keep hidden"])
    asked = []
    session.ask = lambda title, text, choices: asked.append((text, choices)) or next(answers)
    assert load_case(a_dir) is None and session.current_case == case_b   # cancelled: nothing loaded
    assert pred.name in asked[0][0]
    load_case(a_dir)                                                      # kept hidden
    assert session.current_case == case_a
    assert all(not ly.visible for ly in session.case_layers(case_b)) and pred in viewer.layers
    assert any(ly.visible for ly in session.case_layers(case_a))
    # Comparing keeps both visible.
    load.compare.setChecked(True)
    for ly in session.case_layers(case_b):
        ly.visible = True
    load_case(b_dir)
    assert any(ly.visible for ly in session.case_layers(case_a))


# -- 13. the plugin's keys and Redo --------------------------------------------------------------
def test_class_keys_on_the_canvas_and_redo(make_napari_viewer, qtbot, small_case) -> None:
    viewer = make_napari_viewer(show=True)
    _open(viewer, small_case)
    _, correct = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    pred = _prediction(viewer, small_case)
    viewer.layers.selection.active = pred
    canvas = viewer.window._qt_viewer.canvas.native
    for key, label, mode in ((Qt.Key.Key_1, 1, "paint"), (Qt.Key.Key_2, 2, "paint"), (Qt.Key.Key_3, 3, "paint"),
                             (Qt.Key.Key_0, 0, "erase")):
        pred.mode = "pan_zoom"
        qtbot.keyClick(canvas, key)
        assert pred.selected_label == label and pred.mode == mode, key
    assert "(1)" in correct.paint_buttons[1].text() and "Ctrl+Shift+Z" in correct.redo_button.text()
    before = np.array(pred.data, copy=True)
    _brush(pred, (5, 5, 5), 2)
    after = np.array(pred.data, copy=True)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(pred.data, before)
    qtbot.mouseClick(correct.redo_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(pred.data, after)


def test_quitting_writes_the_pending_autosave(make_napari_viewer, qtbot, small_case) -> None:
    viewer = make_napari_viewer()
    _open(viewer, small_case)
    session = Session.for_viewer(viewer)
    pred = _prediction(viewer, small_case)
    qtbot.waitUntil(lambda: session.autosave.pending == 0, timeout=10_000)
    session.autosave.set_delay(60_000)          # the edit's save is still waiting when napari quits
    _brush(pred, (5, 5, 5), 2)
    rec = autosave.recovery_path(small_case.case_id, pred.name)
    assert not np.array_equal(np.load(rec)["labels"], pred.data)
    session.autosave.flush_all_now()            # what QApplication.aboutToQuit calls
    assert np.array_equal(np.load(rec)["labels"], pred.data)
