"""Segment widget's Runtime combo: auto by default, the chosen runtime reaches predict, absence is a notice."""

from __future__ import annotations

import pytest

from napari_brats_seg.core.runtimes import available_runtimes, choice


def test_absent_runtime_is_a_notification_and_nothing_starts(segment_viewer, tiny_model,
                                                             notifications) -> None:
    viewer, widget = segment_viewer  # tests/conftest.py: only torch is visible
    assert widget.runtime_combo.currentText() == "auto"
    widget.add_model(tiny_model())
    widget.runtime_combo.setCurrentText("openvino")
    n_before = len(viewer.layers)
    assert widget.run() is None and widget.task is None
    assert any("napari-brats-seg[fast]" in m for m in notifications())
    assert widget.run_button.isEnabled() and len(viewer.layers) == n_before


def test_chosen_runtime_runs_and_is_shown(segment_viewer, qtbot, tiny_model, one_torch_thread,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("BRATS_SEG_RUNTIMES")
    monkeypatch.setenv("BRATS_SEG_CACHE_DIR", str(tmp_path))
    if "onnxruntime" not in available_runtimes():
        pytest.skip("onnxruntime is not installed (pip install 'napari-brats-seg[fast]')")
    choice.forget_loaded()
    _, widget = segment_viewer
    widget.add_model(tiny_model())
    widget.runtime_combo.setCurrentText("onnxruntime")
    task = widget.run()
    with qtbot.waitSignal(task.done, timeout=120_000):
        pass
    assert widget.last_result.info["runtime"].startswith("onnxruntime ")
    assert widget.status.text().endswith("(onnxruntime)")
    choice.forget_loaded()
