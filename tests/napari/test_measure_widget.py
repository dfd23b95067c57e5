"""Measure widget on a real case crop: calipers as a Shapes layer, the table, and edits by moving an end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Shapes
from qtpy.QtCore import Qt

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.io import read_labels
from napari_brats_seg.core.measure import measure_labels

PLUGIN = "napari-brats-seg"


@pytest.fixture(scope="module")
def real_crop(brats2018_dir: Path) -> np.ndarray:
    """Internal-class labels of a real case, cropped around its largest enhancing lesion (40 x 80 x 80)."""
    internal, _, _ = read_labels(brats2018_dir / "Brats18_CBICA_ABM_1" / "Brats18_CBICA_ABM_1_seg.nii.gz")
    idx = np.argwhere(internal == lab.ENHANCING)
    c = np.median(idx, axis=0).astype(int)
    size = np.array([40, 80, 80])
    start = np.clip(c - size // 2, 0, np.array(internal.shape) - size)
    return np.ascontiguousarray(internal[tuple(slice(s, s + n) for s, n in zip(start, size))])


def test_calipers_table_and_edits(make_napari_viewer, qtbot, real_crop: np.ndarray) -> None:
    viewer = make_napari_viewer()
    spacing = (1.0, 1.0, 1.0)
    layer = viewer.add_labels(real_crop, name="crop labels", scale=spacing, translate=(-20.0, 5.0, 7.0),
                              units=("mm", "mm", "mm"))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure")
    widget.labels_combo.set_layer(layer)
    qtbot.mouseClick(widget.measure_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.computed == 1, timeout=30_000)

    core = measure_labels(real_crop, spacing).et
    top = core.lesions[0]
    cal = widget.calipers
    assert isinstance(cal, Shapes) and cal in viewer.layers
    assert set(cal.shape_type) == {"line"} and len(cal.data) == len(widget._keys) >= 2
    assert tuple(cal.scale) == tuple(layer.scale) and tuple(cal.translate) == tuple(layer.translate)
    assert tuple(cal.units) == tuple(layer.units)  # else napari warns "Inconsistent units across layers"
    # The first two lines are lesion 1's calipers, on its slice, with the core's lengths.
    assert np.allclose([d[:, 0] for d in cal.data[:2]], top.slice)
    assert widget.caliper_lengths()[:2] == pytest.approx([top.long_mm, top.perp_mm])
    assert cal.text.values[0] == f"L1 long {top.long_mm:.1f} mm"
    assert widget.table.item(0, 2).text() == f"{top.long_mm:.1f}"
    assert widget.table.item(0, 5).text() == "target"
    assert widget.spd_mm2 == pytest.approx(core.spd_mm2)
    assert viewer.dims.point[0] == pytest.approx(-20.0 + top.slice)  # the viewer went to lesion 1's slice

    # Drag the far end of the long caliper: 1.5 times as long. The data event updates every number.
    data = [np.array(d, copy=True) for d in cal.data]
    a, b = data[0]
    data[0][1] = a + 1.5 * (b - a)
    cal.data = data
    long_new = 1.5 * top.long_mm
    assert widget.rows[0]["long_mm"] == pytest.approx(long_new, rel=1e-6)
    assert widget.table.item(0, 2).text() == f"{long_new:.1f}" and widget.table.item(0, 6).text() == "yes"
    assert widget.table.item(0, 4).text() == f"{long_new * top.perp_mm:.1f}"
    assert cal.text.values[0] == f"L1 long {long_new:.1f} mm"
    assert widget.spd_mm2 == pytest.approx(core.spd_mm2 - top.product_mm2 + long_new * top.perp_mm, rel=1e-6)

    # Shrink the perpendicular below 10 mm: lesion 1 is no longer measurable, the SPD follows.
    data = [np.array(d, copy=True) for d in cal.data]
    a, b = data[1]
    data[1][1] = a + (b - a) * (8.0 / top.perp_mm)
    cal.data = data
    assert widget.rows[0]["perp_mm"] == pytest.approx(8.0, rel=1e-6)
    assert widget.table.item(0, 5).text() == "non-measurable"
    assert "8.0" in widget.table.item(0, 5).toolTip()
    others = [les.product_mm2 for les in core.targets[1:]]
    assert widget.spd_mm2 == (pytest.approx(sum(others)) if others else None)
    assert ("undefined" in widget.spd_label.text()) is (not others)


def test_no_enhancing_tumour_is_said(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    data = np.zeros((12, 40, 40), np.uint8)
    data[3:9, 5:30, 8:25] = lab.EDEMA
    layer = viewer.add_labels(data, name="edema only")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure")
    widget.labels_combo.set_layer(layer)
    widget.measure()
    qtbot.waitUntil(lambda: widget.computed == 1, timeout=30_000)
    assert "no enhancing tumour" in widget.status.text() and widget.table.rowCount() == 0
    assert "undefined" in widget.spd_label.text()
    widget.region_combo.setCurrentText("WT")
    widget.measure()
    qtbot.waitUntil(lambda: widget.computed == 2, timeout=30_000)
    assert widget.table.rowCount() == 1 and widget.table.item(0, 5).text() == "target"


def test_report_button_writes_the_report(make_napari_viewer, qtbot, small_case_dir: Path, tmp_path: Path,
                                         notifications) -> None:
    from napari.layers import Labels

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure")
    assert widget.write_report(tmp_path / "none.html") is None  # no labels layer yet
    layers = viewer.open(str(small_case_dir), plugin=PLUGIN)
    gt = next(ly for ly in layers if isinstance(ly, Labels))
    widget.labels_combo.set_layer(gt)
    task = widget.write_report(tmp_path / "report.html", model="tiny@abc")
    assert task is not None
    qtbot.waitUntil(lambda: widget.reported == 1, timeout=60_000)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "tiny@abc" in page and gt.name in page

    # Labels without their case's images: said, nothing written.
    orphan = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="orphan")
    for ly in [ly for ly in viewer.layers if ly is not orphan]:
        viewer.layers.remove(ly)
    widget.labels_combo.set_layer(orphan)
    assert widget.write_report(tmp_path / "orphan.html") is None
    assert any("No report" in m for m in notifications()) and not (tmp_path / "orphan.html").exists()


def test_labels_combo_follows_the_newest_prediction(make_napari_viewer, tiny_case) -> None:
    """Measure starts on the reference of the case and follows each new prediction (as Correct and Save)."""
    from dataclasses import replace

    from napari.layers import Labels

    from napari_brats_seg._napari.layers import case_layer_data, labels_layer_data, source_of
    from napari_brats_seg._napari.widgets._qt import add_layer_data

    viewer = make_napari_viewer()
    layers = add_layer_data(viewer, case_layer_data(tiny_case))
    gt = next(ly for ly in layers if isinstance(ly, Labels))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure")
    assert widget.labels_combo.layer() is gt
    src = replace(source_of(gt), role="prediction")
    preds = []
    for name in ("first", "second"):
        d, kwargs, _ = labels_layer_data(np.array(tiny_case.ground_truth, dtype=np.uint8), src,
                                         f"{name} [{tiny_case.case_id}]")
        preds.append(viewer.add_labels(d, **kwargs))
        assert widget.labels_combo.layer() is preds[-1]
    viewer.layers.remove(preds[-1])
    assert widget.labels_combo.layer() is preds[0]


def test_docked_alone_the_table_shows_several_rows(make_napari_viewer, qtbot) -> None:
    """Docked alone in a small window, the table keeps room for several lesions (it showed about one)."""
    from napari_brats_seg._napari.widgets.measure import MIN_ROWS

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(900, 500)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure")
    widget.table.setRowCount(MIN_ROWS + 3)
    qtbot.wait(50)
    row_px = widget.table.verticalHeader().defaultSectionSize()
    assert widget.table.viewport().height() >= MIN_ROWS * row_px
