"""What would stall napari's event loop runs off the GUI thread (bench/bench_gui_stall.py measures it)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
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


def test_load_computes_contrast_limits_in_the_worker(load_viewer, small_case_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Percentiles of each whole sequence took seconds on the GUI thread of a busy 2-core machine.
    from napari_brats_seg._napari import layers

    threads: list[threading.Thread] = []
    original = layers.robust_limits

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(layers, "robust_limits", recorded)
    viewer, widget = load_viewer(small_case_dir)
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



# -- the layers are the same whichever thread made them and however many event-loop turns added them --

def describe(layer, session) -> dict:
    """What the user gets of a layer: type, data, placement, display, lock, plugin metadata."""
    from napari.layers import Labels

    from napari_brats_seg._napari.layers import source_of

    src = source_of(layer)
    out = {
        "type": type(layer).__name__, "name": layer.name, "dtype": str(layer.data.dtype),
        "shape": tuple(layer.data.shape), "data_sum": float(np.asarray(layer.data, dtype=np.float64).sum()),
        "scale": tuple(layer.scale), "translate": tuple(layer.translate), "units": tuple(str(u) for u in layer.units),
        "affine": np.asarray(layer.affine.affine_matrix).round(9).tolist(), "visible": layer.visible,
        "opacity": layer.opacity, "blending": str(layer.blending), "editable": layer.editable,
        "role": src.role if src else None, "modality": src.modality if src else None,
        "case": src.case_id if src else None, "locked": session.is_locked(layer),
    }
    if isinstance(layer, Labels):
        out["colours"] = {k: tuple(np.round(v, 6)) for k, v in layer.colormap.color_dict.items()}
        out["features"] = layer.features.to_dict("list")
    else:
        out["colormap"] = layer.colormap.name
        out["colours"] = np.round(layer.colormap.colors, 6).tolist()
        out["contrast_limits"] = tuple(float(c) for c in layer.contrast_limits)
    return out


def describe_all(viewer) -> list[dict]:
    from napari_brats_seg._napari.session import Session

    session = Session.for_viewer(viewer)
    return [describe(ly, session) for ly in viewer.layers]


def assert_same_layers(got: list[dict], expected: list[dict]) -> None:
    assert [d["name"] for d in got] == [d["name"] for d in expected]
    for g, e in zip(got, expected, strict=True):
        assert g == e, g["name"]


def test_load_widget_adds_exactly_the_layers_it_added_before(make_napari_viewer, load_viewer,
                                                            small_case_dir: Path) -> None:
    from napari_brats_seg._napari.layers import case_layer_data, contrast_limits
    from napari_brats_seg._napari.session import Session
    from napari_brats_seg._napari.widgets._qt import add_layer_data
    from napari_brats_seg.core.io import find_case_files, read_case

    viewer, widget = load_viewer(small_case_dir)
    # before: the GUI thread added the layer-data tuples with viewer.add_<kind> in one handler
    before = make_napari_viewer()
    Session.for_viewer(before)
    case = read_case(find_case_files(small_case_dir))
    add_layer_data(before, case_layer_data(case, contrast_limits(case)))
    got = describe_all(viewer)
    assert len(got) == 5
    assert_same_layers(got, describe_all(before))
    gt = [d for d in got if d["role"] == "ground_truth"]
    assert len(gt) == 1 and gt[0]["locked"] and not gt[0]["editable"]


def test_segment_widget_adds_exactly_the_layers_it_added_before(segment_viewer, make_napari_viewer, qtbot,
                                                                tiny_case, tiny_model, one_torch_thread) -> None:
    from napari_brats_seg._napari.layers import (
        LayerSource,
        case_layer_data,
        labels_layer_data,
        source_of,
        world_placement,
    )
    from napari_brats_seg._napari.session import Session
    from napari_brats_seg._napari.widgets._qt import add_layer_data
    from napari_brats_seg._napari.widgets.segment import result_name

    viewer, widget = segment_viewer
    widget.add_model(tiny_model())
    widget.tta.setChecked(True)
    widget.uncertainty.setChecked(True)
    widget.min_component.setValue(5)
    n_before = len(viewer.layers)
    task = widget.run()
    with qtbot.waitSignal(task.done, timeout=120_000):
        pass
    assert len(viewer.layers) == n_before + 2
    seg = widget.last_result
    # before: the result handler called viewer.add_labels / viewer.add_image on the GUI thread
    before = make_napari_viewer()
    Session.for_viewer(before)
    add_layer_data(before, case_layer_data(tiny_case))
    ref = next(s for ly in before.layers if (s := source_of(ly)) is not None and s.role == "image")
    name = f"{result_name(seg.info, {'min_component_voxels': 5, 'et_min_voxels': 0})} [{ref.case_id}]"
    data, kwargs, _ = labels_layer_data(seg.labels, LayerSource(info=ref.info, role="prediction"), name)
    before.add_labels(data, **kwargs)
    before.add_image(seg.uncertainty, name=f"uncertainty [{ref.case_id}]", colormap="magma", blending="additive",
                     contrast_limits=(0.0, 0.5), metadata={"brats_seg": LayerSource(info=ref.info, role="uncertainty")},
                     **world_placement(ref.geometry))
    got = describe_all(viewer)
    assert_same_layers(got, describe_all(before))
    assert got[-2]["role"] == "prediction" and got[-2]["editable"] and not got[-2]["locked"]
    assert widget.last_layer.name == name and "TTA" in name
    # the session kept the model output and autosaved the result, as before
    sess = Session.for_viewer(viewer)
    assert np.array_equal(sess.original_of(widget.last_layer), seg.labels)
    qtbot.waitUntil(lambda: sess.autosave.pending == 0 and bool(sess.autosave.saved), timeout=20_000)
    from napari_brats_seg._napari import autosave

    rec = [r for r in autosave.find_recoveries(ref.case_id) if r.layer_name == name]
    assert len(rec) == 1 and np.array_equal(rec[0].load(), seg.labels) and rec[0].role == "prediction"


def test_load_adds_one_layer_per_event_loop_turn_and_refuses_a_second_load_meanwhile(
        make_napari_viewer, qtbot, small_case_dir: Path) -> None:
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    widget.inspect(str(small_case_dir))
    task = widget.load()
    counts: list[int] = []  # layers in the viewer at each tick of a timer on the GUI thread
    timer = QTimer()
    timer.timeout.connect(lambda: counts.append(len(viewer.layers)))
    refused: list[object] = []

    def second_click(_result: object) -> None:  # the worker is done, its layers are not added yet
        refused.append(widget.load())
        refused.append(widget.load_button.isEnabled())
        timer.start(0)

    task.succeeded.connect(second_click)
    with qtbot.waitSignal(task.done, timeout=60_000):
        pass
    timer.stop()
    assert refused == [None, False]
    assert len(viewer.layers) == 5 and widget.task is None and widget.load_button.isEnabled()
    # the event loop ran between the layers: the timer saw the viewer with some but not all of them
    assert any(0 < n < 5 for n in counts), counts
    assert widget.load() is not None  # once added, loading (again) works
    with qtbot.waitSignal(widget.task.done, timeout=60_000):
        pass


def test_finish_in_steps_gives_the_event_loop_a_turn_between_steps_and_done_comes_last(qtbot, notifications) -> None:
    from qtpy.QtCore import QTimer

    from napari_brats_seg._napari.worker import start_task

    log: list[str] = []
    task = start_task(lambda on_progress=None, cancel=None: 3, description="testing", show_progress=False)

    def steps(n: int):
        for i in range(n):
            log.append(f"step {i}")
            QTimer.singleShot(0, lambda i=i: log.append(f"loop after {i}"))
            yield
        log.append("last")

    task.succeeded.connect(lambda n: task.finish_in_steps(steps(n)))
    task.done.connect(lambda: log.append("done"))
    with qtbot.waitSignal(task.done, timeout=10_000):
        pass
    assert log == ["step 0", "loop after 0", "step 1", "loop after 1", "step 2", "loop after 2", "last", "done"]
    assert not task.is_running

    # a step that raises ends the steps with an error notification, and done still comes
    log.clear()
    bad = start_task(lambda on_progress=None, cancel=None: 0, description="testing", show_progress=False)

    def failing():
        log.append("step")
        yield
        raise ValueError("no such layer")

    bad.succeeded.connect(lambda _r: bad.finish_in_steps(failing()))
    bad.done.connect(lambda: log.append("done"))
    with qtbot.waitSignal(bad.done, timeout=10_000):
        pass
    assert log == ["step", "done"] and isinstance(bad.error, ValueError)
    assert any("no such layer" in n for n in notifications())


def test_frozen_objects_of_a_removed_layer_are_still_freed(make_napari_viewer) -> None:
    import gc
    import weakref

    from napari_brats_seg._napari import gcpause
    from napari_brats_seg._napari.session import Session

    viewer = make_napari_viewer()
    Session.for_viewer(viewer)
    layer = viewer.add_labels(np.zeros((8, 16, 16), np.uint8), name="to be closed")
    try:
        gcpause.freeze_long_lived()
        assert gcpause.frozen_count() > 10_000  # napari, Qt and the layer are frozen
        gone = weakref.ref(layer)
        data = weakref.ref(layer.data.base if layer.data.base is not None else layer.data)
        viewer.layers.remove(layer)
        del layer
        assert gcpause.frozen_count() == 0  # the session thawed on removal
        gc.collect()
        assert gone() is None and data() is None  # the layer's cycles were collected: no leak
    finally:
        gc.unfreeze()


def test_paused_collects_nothing_inside_then_freezes_and_resumes() -> None:
    import gc

    from napari_brats_seg._napari import gcpause

    assert gc.isenabled()
    try:
        with gcpause.paused():
            assert not gc.isenabled()
            with gcpause.paused():  # a second worker inside at once
                made = [[i] for i in range(1000)]
            assert not gc.isenabled()  # the first is still inside
        assert gc.isenabled() and gcpause.frozen_count() >= len(made)
        with pytest.raises(RuntimeError), gcpause.paused():
            raise RuntimeError("the model did not load")
        assert gc.isenabled()
    finally:
        gc.unfreeze()
