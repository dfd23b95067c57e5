"""Segment widget: a tiny model runs in a worker; the GUI stays live; cancel and errors re-enable inputs."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt, QTimer

from napari_brats_seg._napari.layers import source_of


def test_run_adds_new_named_labels_layer_and_gui_stays_live(segment_viewer, qtbot, tiny_case,
                                                             tiny_model, one_torch_thread) -> None:
    viewer, widget = segment_viewer
    widget.add_model(tiny_model(delay_s=0.05))
    assert widget.case_combo.currentText() == "synthetic-tiny"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    progress = []
    n_before = len(viewer.layers)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    task = widget.task
    assert task is not None
    task.progressed.connect(lambda d, t, m: progress.append((d, t, len(ticks))))
    assert not widget.run_button.isEnabled() and not widget.model_combo.isEnabled()
    assert widget.cancel_button.isEnabled()
    with qtbot.waitSignal(task.done, timeout=60_000):
        pass
    timer.stop()
    # The event loop kept running while the worker computed: the timer fired between progress reports.
    assert len(progress) >= 2 and progress[-1][0] == progress[-1][1]
    assert progress[-1][2] > progress[0][2]
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert len(viewer.layers) == n_before + 1
    layer = widget.last_layer
    assert isinstance(layer, Labels) and layer.data.shape == tiny_case.shape and layer.data.dtype == np.uint8
    assert source_of(layer).role == "prediction" and source_of(layer).case_id == "synthetic-tiny"
    assert set(np.unique(layer.data)) <= {0, 1, 2, 3}
    assert layer.features.set_index("index").loc[2, "name"] == "edema"
    assert tuple(layer.colormap.map(np.array([1]))[0]) == (0.9, 0.1, 0.1, 1.0) or \
        np.allclose(layer.colormap.map(np.array([1]))[0], (0.9, 0.1, 0.1, 1.0))
    # A second run (with TTA and the uncertainty layer) adds new layers; the first is untouched.
    first, first_data = layer, np.array(layer.data, copy=True)
    widget.tta.setChecked(True)
    widget.uncertainty.setChecked(True)
    widget.et_min.setValue(10**6)   # any enhancing tumour is relabelled necrotic core
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(widget.task.done, timeout=120_000):
        pass
    assert widget.last_layer is not first and len(viewer.layers) == n_before + 3
    assert np.array_equal(first.data, first_data)
    assert 3 not in np.unique(widget.last_layer.data)
    unc = viewer.layers[-1]
    assert source_of(unc).role == "uncertainty" and unc.data.shape == tiny_case.shape
    assert float(unc.data.min()) >= 0.0 and float(unc.data.max()) <= 0.5


def test_cancel_stops_within_a_window_and_re_enables(segment_viewer, qtbot, tiny_model,
                                                     one_torch_thread, notifications) -> None:
    viewer, widget = segment_viewer
    widget.add_model(tiny_model(delay_s=0.3))
    widget.tta.setChecked(True)  # 8 flips x windows: far more units than run before the cancel lands
    n_before = len(viewer.layers)
    seen = []
    task = widget.run()
    task.progressed.connect(lambda d, t, m: seen.append((d, t)))
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=30_000)
    with qtbot.waitSignal(task.cancelled, timeout=30_000):
        qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.task is None, timeout=10_000)
    done_at_cancel, total = seen[-1]
    assert done_at_cancel < total
    assert len(viewer.layers) == n_before
    assert widget.run_button.isEnabled() and widget.model_combo.isEnabled()
    assert widget.status.text() == "Cancelled."


def test_model_that_does_not_fit_notifies_and_re_enables(segment_viewer, qtbot, tiny_model,
                                                         one_torch_thread, notifications) -> None:
    viewer, widget = segment_viewer
    widget.add_model(tiny_model(channels=("t1", "t1ce"), in_channels=4))
    n_before = len(viewer.layers)
    task = widget.run()
    with qtbot.waitSignal(task.failed, timeout=30_000) as blocker:
        pass
    qtbot.waitUntil(lambda: widget.task is None, timeout=10_000)
    assert type(blocker.args[0]).__name__ == "ModelError"
    assert any("input channels" in m for m in notifications())
    assert len(viewer.layers) == n_before
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_progress_reaching_the_gui_after_the_end_is_dropped(make_napari_viewer, qtbot) -> None:
    # A queued progress report can be delivered while the bar's update processes events, after the
    # cancel: it must not overwrite what listeners showed for the end ("Cancelled.").
    from napari_brats_seg._napari.worker import Task
    from napari_brats_seg.core.errors import Cancelled

    make_napari_viewer()
    task = Task(lambda on_progress, cancel: None, show_progress=False)
    seen: list[tuple[int, int, str]] = []
    ended: list[str] = []
    task.progressed.connect(lambda d, t, m: seen.append((d, t, m)))
    task.cancelled.connect(lambda: ended.append("cancelled"))
    task._on_progress(1, 4, "window 1/4")
    task._on_errored(Cancelled("stopped"))
    task._on_progress(2, 4, "window 2/4")
    assert seen == [(1, 4, "window 1/4")] and ended == ["cancelled"]
