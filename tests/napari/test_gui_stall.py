"""What would stall napari's event loop runs off the GUI thread (bench/bench_gui_stall.py measures it)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

PLUGIN = "napari-brats-seg"


def test_load_worker_does_the_first_layers_one_off_work(make_napari_viewer, qtbot, small_case_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Adding a session's first layers imports scipy.ndimage (thumbnails) and builds pint's unit registry
    # (the layers' mm units): over a second on the GUI thread unless the load worker did it first.
    from napari_brats_seg._napari import layers

    threads: list[threading.Thread] = []
    original = layers.warm_up_layer_creation

    def recorded() -> None:
        threads.append(threading.current_thread())
        original()

    monkeypatch.setattr(layers, "warm_up_layer_creation", recorded)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    assert widget.inspect(str(small_case_dir)) is not None
    task = widget.load()
    assert task is not None
    with qtbot.waitSignal(task.done, timeout=60_000):
        pass
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert len(viewer.layers) >= 4
    assert "scipy.ndimage" in sys.modules


def test_load_computes_contrast_limits_in_the_worker(make_napari_viewer, qtbot, small_case_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Percentiles of each whole sequence took seconds on the GUI thread of a busy 2-core machine.
    from napari_brats_seg._napari import layers

    threads: list[threading.Thread] = []
    original = layers.robust_limits

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(layers, "robust_limits", recorded)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    widget.inspect(str(small_case_dir))
    task = widget.load()
    with qtbot.waitSignal(task.done, timeout=60_000):
        pass
    images = [ly for ly in viewer.layers if layers.source_of(ly).role == "image"]
    assert len(images) == 4 and len(threads) == 4
    assert all(t is not threading.main_thread() for t in threads)
    # the layers show what robust_limits gives
    for ly in images:
        assert tuple(ly.contrast_limits) == pytest.approx(original(ly.data))


def test_warm_up_builds_the_unit_registry_napari_uses() -> None:
    import pint
    from napari.utils._units import get_unit_registry

    from napari_brats_seg._napari.layers import warm_up_layer_creation

    warm_up_layer_creation()
    reg = get_unit_registry()
    assert reg is pint.get_application_registry()
    assert str(reg.Unit("mm")) == "millimeter"
