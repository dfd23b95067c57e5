"""The Correct widget's "Redraw on a few slices" section on a real case crop: outlines drawn into its
outline layer on a few slices replace the region as ONE undo step (autosaved), a re-apply as outlines
are added replaces the previous redraw, and misuse is refused with nothing changed or recorded."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from scipy import ndimage
from test_correct_tools import _setup, autosaved_then_undone, crop_case  # noqa: F401  (crop_case: the fixture)

from napari_brats_seg._napari.layers import is_scratch, source_of
from napari_brats_seg._napari.widgets.legend import LegendWidget
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import redraw


def _contour(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """A closed one-pixel contour (what one drag of a small brush around a disc leaves)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2
    return disc & ~ndimage.binary_erosion(disc)


def _draw(outlines, z: int, centre: tuple[float, float], radius: float) -> None:
    """Draw a contour into slice ``z`` of the outline layer as one stroke (emits its paint event)."""
    ring = np.zeros(outlines.data.shape, bool)
    ring[z] = _contour(outlines.data.shape[1:], centre, radius)
    with outlines.block_history():
        outlines.data_setitem(np.nonzero(ring), 1)


def _tumour(labels: np.ndarray) -> tuple[int, int, int, tuple[float, float]]:
    """Three slices through the tumour (a quarter, half and three quarters of its extent) and its centre."""
    zs = np.flatnonzero((labels > 0).any(axis=(1, 2)))
    cy, cx = np.argwhere(labels > 0)[:, 1:].mean(axis=0)
    return int(zs[len(zs) // 4]), int(zs[len(zs) // 2]), int(zs[3 * len(zs) // 4]), (float(cy), float(cx))


def test_outline_layer_redraw_undo_and_autosave(make_napari_viewer, qtbot, crop_case) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    tools, rd = widget.tools, widget.tools.redraw
    assert rd.group in tools.sections and "Redraw on a few slices" in rd.group.text()
    original = np.array(pred.data, copy=True)
    sp = source_of(pred).geometry.spacing
    rd.auto_check.setChecked(False)

    rd.outline_button.click()
    outl = rd.outline_layer
    assert outl is not None and outl.name == f"outlines [{pred.name}]" and outl.data.shape == pred.data.shape
    assert np.allclose(outl.scale, pred.scale) and np.allclose(outl.translate, pred.translate)
    assert tuple(outl.units) == tuple(pred.units)
    assert outl.mode == "paint" and outl.selected_label == 1 and outl.brush_size == 3
    assert viewer.layers.selection.active is outl.__wrapped__ and tools.layer() is pred    # the target stays
    # A scratch layer in magenta: the volumes table does not take it for the tumour's labels.
    assert is_scratch(outl) and np.allclose(outl.colormap.map(np.array([1]))[0], [1, 0, 1, 1])
    legend = LegendWidget(viewer)
    viewer.layers.selection.active = outl.__wrapped__
    assert legend.layer is not outl.__wrapped__ and not is_scratch(legend.layer)
    rd.outline_button.click()
    assert rd.outline_layer is outl and sum(ly.name == outl.name for ly in viewer.layers) == 1

    # The tumour core outlined on two slices, new voxels enhancing (the region's classes only offered).
    rd.region_combo.setCurrentIndex(rd.region_combo.findData("TC"))
    assert rd.fill_combo.currentData() == redraw.default_fill("TC") == lab.NECROTIC
    assert not rd.fill_combo.model().item(rd.fill_combo.findData(lab.EDEMA)).isEnabled()
    rd.fill_combo.setCurrentIndex(rd.fill_combo.findData(lab.ENHANCING))
    z1, _, z2, centre = _tumour(original)
    _draw(outl, z1, centre, 5.0)
    _draw(outl, z2, centre, 8.0)
    n_hist = len(pred._undo_history)
    rd.redraw_button.click()
    expected = redraw.redraw(original, np.asarray(outl.data), "TC", lab.ENHANCING, axis=0, spacing=sp)
    assert np.array_equal(pred.data, expected)
    assert (pred.data[z1 + 1:z2] != original[z1 + 1:z2]).any()              # the slices between changed
    assert np.array_equal(pred.data[:z1], original[:z1]) and np.array_equal(pred.data[z2 + 1:], original[z2 + 1:])
    assert len(pred._undo_history) == n_hist + 1 and "voxels changed" in tools.status.text()

    # The redraw is autosaved like a brush stroke, and so is its undo (one step: the exact previous array).
    autosaved_then_undone(viewer, qtbot, pred, crop_case.case_id, expected, original)


def test_redraw_again_as_outlines_are_added_replaces_the_previous_redraw(
        make_napari_viewer, qtbot, crop_case) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    rd = widget.tools.redraw
    original = np.array(pred.data, copy=True)
    sp = source_of(pred).geometry.spacing
    assert rd.auto_check.isChecked() and rd.region() == "WT" and rd.fill_combo.currentData() == lab.EDEMA
    outl = rd.make_outline_layer()
    z1, zm, z2, centre = _tumour(original)
    _draw(outl, z1, centre, 3.0)                   # a tight whole tumour on two slices: its core goes
    _draw(outl, z2, centre, 3.0)
    two = np.array(outl.data, copy=True)
    first = redraw.redraw(original, two, "WT", axis=0, spacing=sp)
    qtbot.waitUntil(lambda: np.array_equal(pred.data, first), timeout=10_000)

    _draw(outl, zm, centre, 20.0)                  # a wide one between them: the whole tumour there again
    three = np.asarray(outl.data)
    again = redraw.redraw(original, three, "WT", axis=0, spacing=sp)
    compounded = redraw.redraw(first, three, "WT", axis=0, spacing=sp)
    assert not np.array_equal(again, compounded)   # (core voxels the first redraw removed came back as edema)
    qtbot.waitUntil(lambda: np.array_equal(pred.data, again), timeout=10_000)
    assert not rd.timer.isActive()
    pred.undo()                                    # each automatic redraw is one undo step
    assert np.array_equal(pred.data, first)
    pred.undo()
    assert np.array_equal(pred.data, original)
    pred.redo()
    pred.redo()
    assert np.array_equal(pred.data, again)

    # Clear outlines: the layer is empty, the labels keep the redraw, and the next outline (another
    # region) starts from them rather than from the labels before the first redraw.
    rd.clear_outlines()
    assert not np.asarray(outl.data).any() and np.array_equal(pred.data, again) and not rd.timer.isActive()
    rd.region_combo.setCurrentIndex(rd.region_combo.findData("TC"))
    _draw(outl, zm, centre, 2.0)
    core = redraw.redraw(again, np.asarray(outl.data), "TC", axis=0, spacing=sp)
    qtbot.waitUntil(lambda: np.array_equal(pred.data, core), timeout=10_000)


def test_redraw_used_wrongly_changes_nothing(make_napari_viewer, crop_case, notifications) -> None:  # noqa: F811
    viewer, pred, widget = _setup(make_napari_viewer, crop_case)
    tools, rd = widget.tools, widget.tools.redraw
    ref = next(ly for ly in viewer.layers if ly is not pred and isinstance(ly, Labels))
    original, ref_before = np.array(pred.data, copy=True), np.array(ref.data, copy=True)
    n_hist, n_ref = len(pred._undo_history), len(ref._undo_history)
    rd.auto_check.setChecked(False)

    rd.redraw_button.click()                                      # no outline layer
    assert "New outline layer" in tools.status.text()
    outl = rd.make_outline_layer()
    rd.redraw_button.click()                                      # empty outlines
    assert "outline on at least one slice" in tools.status.text()
    z1, _, z2, centre = _tumour(original)
    _draw(outl, z1, centre, 6.0)
    widget.layer_combo.set_layer(ref)                             # the locked ground truth
    assert tools.layer() is ref and not ref.editable
    rd.redraw_button.click()
    assert "read-only" in tools.status.text()
    small = viewer.add_labels(np.zeros((4, 4, 4), np.uint8), name="small")
    widget.layer_combo.set_layer(small)                           # an outline layer of another shape
    rd.redraw_button.click()
    assert "shape" in tools.status.text()
    widget.layer_combo.set_layer(outl)                            # the outline layer as the target
    rd.redraw_button.click()
    assert "outline layer is the corrected layer" in tools.status.text()

    assert np.array_equal(pred.data, original) and len(pred._undo_history) == n_hist
    assert np.array_equal(ref.data, ref_before) and len(ref._undo_history) == n_ref
    assert not small.data.any() and not small._undo_history
    msgs = notifications()
    assert any("New outline layer" in m for m in msgs) and any("read-only" in m for m in msgs)
