"""The Segment widget with hostile model files: an error notification naming the key, and no code runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from napari_brats_seg._napari.layers import case_layer_data
from napari_brats_seg._napari.widgets._qt import add_layer_data

PLUGIN = "napari-brats-seg"
_HOSTILE = Path(__file__).resolve().parents[1] / "core" / "models" / "test_hostile_models.py"


@pytest.fixture(scope="module")
def hostile_files():
    """The attack builders of the core tests (one definition of each attack)."""
    spec = importlib.util.spec_from_file_location("hostile_models_builders", _HOSTILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hostile_models_fail_in_the_widget_without_running_code(make_napari_viewer, qtbot, tiny_case, tmp_path,
                                                                hostile_files, notifications,
                                                                one_torch_thread) -> None:
    viewer = make_napari_viewer()
    add_layer_data(viewer, case_layer_data(tiny_case))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    n_layers = len(viewer.layers)
    tried = []
    for name in ("nested-target", "requires", "target-in-list", "string-network-def"):
        for form in ("bundle", "checkpoint"):
            mark = tmp_path / f"PWNED-{form}-{name}"
            network_def, text = hostile_files.attacks(mark)[name]
            if form == "bundle":
                path = hostile_files.write_bundle(tmp_path / f"{name}-bundle", network_def)
            else:
                path = hostile_files.write_bundle_checkpoint(tmp_path / f"{name}.safetensors", network_def)
            widget.add_model(str(path))
            assert widget.model_combo.currentData() == str(path)
            task = widget.run()
            assert task is not None
            with qtbot.waitSignal(task.failed, timeout=60_000) as blocker:
                pass
            qtbot.waitUntil(lambda: widget.task is None, timeout=10_000)
            assert type(blocker.args[0]).__name__ == "ModelError", (form, name, blocker.args[0])
            assert text in str(blocker.args[0]) and str(path) in str(blocker.args[0])
            assert any(text in m for m in notifications()), (form, name)
            assert text in widget.status.text()
            assert not mark.exists(), (form, name)
            assert widget.run_button.isEnabled()
            tried.append((form, name))
    assert len(tried) == 8 and len(viewer.layers) == n_layers
