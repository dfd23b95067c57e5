"""Score widget (table, debounced refresh, chart, CSV) and Save widget (source geometry, refusals)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
from napari.layers import Labels
from qtpy.QtCore import Qt

from napari_brats_seg._napari import edits
from napari_brats_seg._napari.layers import LayerSource, labels_layer_data

PLUGIN = "napari-brats-seg"


def test_score_table_refresh_and_csv(make_napari_viewer_proxy, qtbot, small_case, tmp_path: Path) -> None:
    viewer = make_napari_viewer_proxy()
    src = LayerSource.of_case(small_case, "ground_truth")
    data, kwargs, _ = labels_layer_data(small_case.ground_truth, src, "reference")
    gt = viewer.add_labels(data, **kwargs)
    pred_data = np.array(small_case.ground_truth, copy=True)
    data, kwargs, _ = labels_layer_data(pred_data, replace(src, role="prediction"), "prediction")
    pred = viewer.add_labels(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Score")
    widget.reference_combo.set_layer(gt)
    widget.prediction_combo.set_layer(pred)
    qtbot.mouseClick(widget.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.computed == 1, timeout=20_000)
    assert widget.table.item(0, 0).text() == "1.000"   # WT Dice of identical maps
    assert widget.table.item(0, 1).text() == "0.00"    # HD95
    assert float(widget.table.item(0, 4).text()) > 0
    assert len(widget.figure.axes[0].patches) == 3

    # An edit of the prediction refreshes the table after the debounce delay.
    wrong = np.array(pred.data, copy=True)
    wrong[wrong == 2] = 0
    edits.apply_edit(pred, wrong)
    qtbot.waitUntil(lambda: widget.computed == 2, timeout=20_000)
    assert float(widget.table.item(0, 0).text()) < 1.0
    assert widget.results["labels"]["ED"]["dice"] == 0.0

    out = widget.export_csv(tmp_path / "scores.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["region"] for r in rows] == ["WT", "TC", "ET", "NCR", "ED"]
    assert float(rows[4]["dice"]) == 0.0 and float(rows[1]["dice"]) == 1.0


def test_save_widget_writes_source_geometry_and_refuses_inputs(make_napari_viewer, qtbot, small_case_dir: Path,
                                                               tmp_path: Path, notifications) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(small_case_dir), plugin=PLUGIN)
    gt = next(ly for ly in layers if isinstance(ly, Labels))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Save")
    widget.layer_combo.set_layer(gt)
    seg_in = next(small_case_dir.glob("*_seg.nii.gz"))
    before = seg_in.read_bytes()

    widget.path_edit.setText(str(seg_in))
    widget.overwrite.setChecked(True)
    qtbot.mouseClick(widget.save_button, Qt.MouseButton.LeftButton)
    assert widget.last_saved is None and seg_in.read_bytes() == before
    assert any("input file" in m for m in notifications())

    out = tmp_path / "out" / "corrected.nii.gz"
    widget.overwrite.setChecked(False)
    widget.path_edit.setText(str(out))
    qtbot.mouseClick(widget.save_button, Qt.MouseButton.LeftButton)
    assert widget.last_saved == out
    a, b = nib.load(str(seg_in)), nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(b.dataobj), np.asanyarray(a.dataobj))
    np.testing.assert_array_equal(b.affine, a.affine)

    # An existing file is kept unless Overwrite is ticked; the msd scheme changes the stored values.
    widget.scheme_combo.setCurrentText("msd")
    qtbot.mouseClick(widget.save_button, Qt.MouseButton.LeftButton)
    assert any("exists" in m for m in notifications())
    widget.overwrite.setChecked(True)
    qtbot.mouseClick(widget.save_button, Qt.MouseButton.LeftButton)
    stored = np.asanyarray(nib.load(str(out)).dataobj)
    orig = np.asanyarray(a.dataobj)
    assert np.array_equal(stored == 1, orig == 2) and np.array_equal(stored == 2, orig == 1)
