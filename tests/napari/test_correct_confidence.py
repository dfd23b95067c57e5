"""The Correct widget's "Border by model confidence" section on a real case crop: a slider release is
the core function's output as ONE undo step (autosaved), releases of one drag series replace each
other, misuse is refused with nothing changed or recorded; and the Segment widget's result layer
carries the model's whole-tumour probability the section needs."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt
from scipy import ndimage
from test_correct_tools import _setup, autosaved_then_undone, crop_case  # noqa: F401  (crop_case: the fixture)

from napari_brats_seg._napari import edits
from napari_brats_seg._napari.layers import PROBABILITY_KEY, source_of
from napari_brats_seg._napari.widgets.correct_confidence import NO_PROBABILITY
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit.confidence import border_by_confidence, quantise
from napari_brats_seg.core.measure.volumes import volumes_ml

PLUGIN = "napari-brats-seg"


def _probability(labels: np.ndarray, spacing, satellite: bool = False) -> np.ndarray:
    """A smooth WT probability, 0.5 on the labels' border: a logistic of the signed distance (mm).

    With ``satellite``, a sure blob (0.9) about 5 mm outside the tumour, joined to it by a doubtful
    bridge (0.4): a wide border (below 0.4) reaches it, a tight one (above 0.4) does not.
    """
    wt = labels > 0
    outside, inside = (ndimage.distance_transform_edt(m, sampling=spacing) for m in (~wt, wt))
    p = 1.0 / (1.0 + np.exp((outside - inside) / 3.0))
    if satellite:
        centre = np.argwhere((outside > 4.5) & (outside < 5.5))[0]
        _, (iz, iy, ix) = ndimage.distance_transform_edt(~wt, return_indices=True)
        near = np.array([iz[tuple(centre)], iy[tuple(centre)], ix[tuple(centre)]])
        bridge = np.zeros(wt.shape, bool)
        for f in np.linspace(0.0, 1.0, 20):
            bridge[tuple(np.rint(centre + f * (near - centre)).astype(int))] = True
        p[ndimage.binary_dilation(bridge) & ~wt] = 0.4
        g = np.ogrid[tuple(slice(0, n) for n in wt.shape)]
        p[sum((x - c) ** 2 for x, c in zip(g, centre)) <= 2] = 0.9
    return quantise(p)


def _with_probability(make_napari_viewer, case, satellite: bool = False):
    """The crop, the Correct widget on a prediction holding a probability, the section opened."""
    viewer, pred, widget = _setup(make_napari_viewer, case)
    sec = widget.tools.confidence
    assert not sec.slider.isEnabled() and sec.status.text() == NO_PROBABILITY   # none yet
    prob = _probability(np.asarray(pred.data), source_of(pred).geometry.spacing, satellite)
    pred.metadata[PROBABILITY_KEY] = prob
    sec.group.expand(animate=False)                # opening the section looks at the layer again
    assert sec.slider.isEnabled() and "drag the slider" in sec.status.text()
    return viewer, pred, widget, prob


def _release_at(qtbot, slider, value: float) -> None:
    """Drag the slider (pressed, moved, released) to ``value``: only the release applies."""
    slider.setSliderDown(True)
    slider.setValue(value)
    qtbot.wait(400)                                # longer than the typed-value delay: nothing applies
    slider.setSliderDown(False)                    # emits sliderReleased


def test_release_applies_the_core_function_as_one_undo_step(make_napari_viewer, qtbot, crop_case) -> None:  # noqa: F811
    viewer, pred, widget, prob = _with_probability(make_napari_viewer, crop_case)
    tools, sec = widget.tools, widget.tools.confidence
    assert sec.group in tools.sections and "Border by model confidence" in sec.group.text()
    assert (sec.slider.minimum(), sec.slider.maximum(), sec.slider.value()) == (0.05, 0.95, 0.5)
    original, n_hist = np.array(pred.data, copy=True), len(pred._undo_history)

    sec.slider.setSliderDown(True)
    sec.slider.setValue(0.7)
    qtbot.wait(400)
    assert np.array_equal(pred.data, original) and len(pred._undo_history) == n_hist    # dragging: nothing yet
    sec.slider.setSliderDown(False)
    expected = border_by_confidence(original, prob, 0.7)
    assert np.array_equal(pred.data, expected) and not np.array_equal(expected, original)
    assert len(pred._undo_history) == n_hist + 1
    n = int((expected != original).sum())
    wt = volumes_ml(expected, source_of(pred).geometry.spacing)["WT"]
    text = f"border at WT probability >= 0.70: {n} voxels changed; WT {wt:.1f} mL"
    assert sec.status.text() == text and tools.status.text() == text
    assert (expected > 0).sum() < (original > 0).sum()                             # tighter
    core = np.isin(original, lab.REGION_CLASSES["TC"])
    assert np.array_equal(expected[core], original[core])                          # the core stays

    # Autosaved like a brush stroke, and so is its undo (one step: the exact previous array).
    autosaved_then_undone(viewer, qtbot, pred, crop_case.case_id, expected, original)
    assert len(pred._undo_history) == n_hist

    # A drag stopping between steps applies the nearest step, shown on the slider.
    _release_at(qtbot, sec.slider, 0.33)
    assert sec.slider.value() == 0.35 and np.array_equal(pred.data, border_by_confidence(original, prob, 0.35))
    assert (pred.data > 0).sum() > (original > 0).sum()                             # wider
    pred.undo()
    assert np.array_equal(pred.data, original)
    # The slider still reads 0.35, the labels no longer: the section says so.
    assert sec.status.text().startswith("the labels changed since the last release") and "0.35" in sec.status.text()


def test_a_drag_series_replaces_itself_until_another_edit(make_napari_viewer, qtbot, crop_case) -> None:  # noqa: F811
    viewer, pred, widget, prob = _with_probability(make_napari_viewer, crop_case, satellite=True)
    sec = widget.tools.confidence
    original, n_hist = np.array(pred.data, copy=True), len(pred._undo_history)
    blob = (prob == 230) & (original == 0)                      # the sure blob outside the tumour
    compounded = original
    for t in (0.5, 0.3, 0.7, 0.6):
        _release_at(qtbot, sec.slider, t)
        compounded = border_by_confidence(compounded, prob, t)
        assert np.array_equal(pred.data, border_by_confidence(original, prob, t)), t
    assert (pred.data[blob] == 0).all()                         # 0.6 once: the bridge is too doubtful
    assert (compounded[blob] == lab.EDEMA).all()                # compounded, 0.3 would have kept the blob
    assert len(pred._undo_history) == n_hist + 3                # each release that changed voxels: one step
    pred.undo()                                                 # one step back: the 0.7 release
    assert np.array_equal(pred.data, border_by_confidence(original, prob, 0.7))
    _release_at(qtbot, sec.slider, 0.6)                         # the undo ended the series: from what is shown
    assert np.array_equal(pred.data, border_by_confidence(border_by_confidence(original, prob, 0.7), prob, 0.6))

    # Another edit ends the series: the next release starts from the labels as they are now.
    speck = np.array(pred.data, copy=True)
    far = tuple(int(v) for v in np.argwhere((ndimage.distance_transform_edt(speck == 0) > 5) & (prob < 30))[0])
    speck[far] = lab.EDEMA
    edits.apply_edit(pred, speck)
    _release_at(qtbot, sec.slider, 0.8)
    assert np.array_equal(pred.data, border_by_confidence(speck, prob, 0.8))
    assert pred.data[far] == lab.BACKGROUND                     # the speck's probability is low: it leaves

    # A value typed into the slider's box applies shortly after, as a release.
    before = np.array(pred.data, copy=True)
    sec.slider._label.setText("0.40")
    sec.slider._label.editingFinished.emit()
    qtbot.waitUntil(lambda: not np.array_equal(pred.data, before), timeout=5_000)
    assert np.array_equal(pred.data, border_by_confidence(speck, prob, 0.4))
    assert sec.status.text().startswith("border at WT probability >= 0.40: ")


def test_confidence_used_wrongly_changes_nothing(make_napari_viewer, qtbot, crop_case, notifications) -> None:  # noqa: F811
    viewer, pred, widget, prob = _with_probability(make_napari_viewer, crop_case)
    sec = widget.tools.confidence
    gt = next(ly for ly in viewer.layers if ly is not pred and isinstance(ly, Labels))
    original, gt_before = np.array(pred.data, copy=True), np.array(gt.data, copy=True)
    n_hist, n_gt = len(pred._undo_history), len(gt._undo_history)

    # A hand-drawn layer and the ground truth read from file hold no probabilities: slider disabled.
    drawn = viewer.add_labels(np.where(original > 0, lab.EDEMA, 0).astype(np.uint8), name="drawn",
                              scale=pred.scale, translate=pred.translate, units=pred.units)
    for layer, refusal in ((drawn, NO_PROBABILITY), (gt, "read-only")):
        widget.layer_combo.set_layer(layer)
        assert sec.tools.layer() is layer
        assert not sec.slider.isEnabled() and sec.status.text() == NO_PROBABILITY
        assert sec.apply() == 0 and refusal in widget.tools.status.text()   # even if reached
    # A probability on the wrong grid is none.
    widget.layer_combo.set_layer(drawn)
    drawn.metadata[PROBABILITY_KEY] = prob[:-1]
    sec.group.collapse(animate=False)
    sec.group.expand(animate=False)
    assert not sec.slider.isEnabled()

    # The locked ground truth, even holding a probability: the usual refusal.
    gt.metadata[PROBABILITY_KEY] = prob
    widget.layer_combo.set_layer(pred)
    widget.layer_combo.set_layer(gt)
    assert sec.slider.isEnabled() and not gt.editable
    _release_at(qtbot, sec.slider, 0.7)
    assert "read-only" in widget.tools.status.text() and "read-only" in sec.status.text()

    assert np.array_equal(gt.data, gt_before) and len(gt._undo_history) == n_gt
    assert np.array_equal(pred.data, original) and len(pred._undo_history) == n_hist
    assert not drawn._undo_history
    msgs = notifications()
    assert any("read-only" in m for m in msgs) and any(NO_PROBABILITY in m for m in msgs)


def test_the_segment_widgets_result_carries_the_probability(segment_viewer, qtbot, tiny_case, tiny_model,
                                                            one_torch_thread) -> None:
    from napari_brats_seg.core.inference import predict

    viewer, widget = segment_viewer
    model = tiny_model()
    widget.add_model(model)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(widget.task.done, timeout=60_000):
        pass
    layer = widget.last_layer
    prob = layer.metadata[PROBABILITY_KEY]
    assert prob.dtype == np.uint8 and prob.shape == layer.data.shape == tiny_case.shape
    ref = predict(tiny_case, model, device="cpu", probabilities=True, runtime="torch")
    assert np.array_equal(prob, quantise(ref.probabilities["WT"])) and np.array_equal(layer.data, ref.labels)
    assert widget.last_result.probabilities is None             # the floats are not kept alive

    # The Correct widget opens on that result with the slider ready.
    _, correct = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct")
    assert correct.layer() is layer and correct.tools.confidence.slider.isEnabled()
