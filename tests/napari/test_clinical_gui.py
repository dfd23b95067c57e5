"""The clinical path in napari: a DICOM study in the Load widget, Prepare, the QC view, Save onto the
source (native NIfTI, DICOM-SEG), and a DICOM-SEG opened over its series. Real study, real viewer.

Preparing runs on a reduced copy of the real study (10 contiguous slices of four of its 2D series,
copied) with the classical skull strip, so that it takes seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Image, Labels

pytest.importorskip("pydicom", reason="the clinical GUI needs the [clinical] extra")
pytest.importorskip("highdicom", reason="the clinical GUI needs the [clinical] extra")

PLUGIN = "napari-brats-seg"
#: The reduced study: role -> series folder of the real study (all 26-slice axial 2D series).
REDUCED = {"t1": "T1W_SE-TRA_FS - 901", "t1ce": "T1W_SE-TRA_FS - 1201", "t2": "T2W_TSE_TRA - 401",
           "flair": "T2W_FLAIR_TRA - 701"}


def _reduced_study(study: Path, out: Path, roles: dict[str, str] = REDUCED, keep: slice = slice(8, 18)) -> Path:
    """A study folder of contiguous slices of some of the real study's series (copies)."""
    from napari_brats_seg.core.clinical.dicom import discover
    from napari_brats_seg.core.clinical.volume import slice_order

    for name in roles.values():
        series = discover(study / name).series[0]
        (out / name).mkdir(parents=True)
        for i in slice_order(series)[keep]:
            src = series.frames[int(i)].path
            shutil.copy2(src, out / name / src.name)
    return out


def _load_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    return widget


def _open_study(qtbot, widget, folder: Path) -> None:
    widget.inspect(str(folder))
    qtbot.waitUntil(lambda: widget.study_panel.task is None, timeout=60_000)


def test_study_folder_shows_series_and_editable_roles(make_napari_viewer, qtbot, dicom_study_dir: Path) -> None:
    viewer = make_napari_viewer()
    widget = _load_widget(viewer)
    _open_study(qtbot, widget, dicom_study_dir)
    panel = widget.study_panel
    assert panel.isVisibleTo(widget) and not widget.table.isVisibleTo(widget)
    assert panel.series_table.rowCount() == 8
    numbers = [panel.series_table.item(r, 0).text() for r in range(8)]
    assert numbers == ["101", "401", "502", "701", "901", "1101", "1201", "1301"]
    assert "localizer" in panel.series_table.item(0, 5).text()
    assert panel.series_table.item(5, 2).text().startswith("oblique (coronal")
    # the guess, pre-set; the localizer is not selectable for any role
    assert panel.roles() == {"t1": 502, "t1ce": 1101, "t2": 401, "flair": 701}
    for role in ("t1", "t1ce", "t2", "flair"):
        combo = panel.role_combo(role)
        assert combo.findData(101) == -1 and combo.findData(1101) >= 0
    assert panel.reason_label("t1ce").text().startswith("confirm: low:")
    assert "order in time" in panel.reason_label("t1ce").toolTip()
    assert panel.reason_label("t2").text().startswith("high:")
    # the user confirms another series: the highlight goes
    panel.role_combo("t1").setCurrentIndex(panel.role_combo("t1").findData(901))
    assert panel.roles()["t1"] == 901 and panel.reason_label("t1").text() == "user: chosen by the user"
    panel.choose("t1ce", 1101)  # confirmed as it is
    assert panel.reason_label("t1ce").text() == "user: chosen by the user"
    with pytest.raises(ValueError, match="cannot be the T2"):
        panel.choose("t2", 101)
    assert panel.output_edit.text() == str(dicom_study_dir.resolve().parent / "patient1_prepared" / "patient1")


def test_bad_study_input_is_a_clear_notification_and_writes_nothing(make_napari_viewer, qtbot, dicom_study_dir: Path,
                                                                    tmp_path: Path, notifications) -> None:
    viewer = make_napari_viewer()
    widget = _load_widget(viewer)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert widget.inspect(str(empty)) is None  # nothing in it: the NIfTI message, at once
    assert widget.study_panel.task is None and any("no .nii" in m for m in notifications())
    other = tmp_path / "not-dicom"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "notes.txt").write_text("not an image")
    _open_study(qtbot, widget, other)
    msgs = notifications()
    assert any("neither a case nor a DICOM study" in m for m in msgs), msgs
    assert widget.study_panel.study is None and not widget.study_panel.isVisibleTo(widget)
    assert "no DICOM image series found (1 file(s) that are not DICOM)" in widget.geometry_label.text()

    no_flair = _reduced_study(dicom_study_dir, tmp_path / "no-flair",
                              {r: REDUCED[r] for r in ("t1", "t1ce", "t2")})
    _open_study(qtbot, widget, no_flair)
    panel = widget.study_panel
    assert panel.roles()["flair"] is None
    assert panel.reason_label("flair").text().startswith("confirm: none:")
    out = tmp_path / "out" / "case"
    panel.output_edit.setText(str(out))
    assert panel.prepare() is None
    assert any("No series is chosen for FLAIR" in m for m in notifications()), notifications()
    assert not (tmp_path / "out").exists() and panel.task is None


def test_prepare_qc_view_save_native_and_dicom_seg(make_napari_viewer, qtbot, dicom_study_dir: Path,
                                                   tmp_path: Path, notifications) -> None:
    from napari_brats_seg._napari.layers import LayerSource, labels_layer_data, source_of
    from napari_brats_seg.core.clinical.export import read_dicom_seg

    viewer = make_napari_viewer()
    widget = _load_widget(viewer)
    study = _reduced_study(dicom_study_dir, tmp_path / "study")
    _open_study(qtbot, widget, study)
    panel = widget.study_panel
    assert panel.roles() == {"t1": 901, "t1ce": 1201, "t2": 401, "flair": 701}
    out = tmp_path / "prepared" / "p1"
    panel.output_edit.setText(str(out))
    panel.skull_strip_combo.setCurrentText("classical")
    seen: list[str] = []
    panel.prepare_button.click()
    assert panel.task is not None, panel.status.text()
    assert panel.cancel_button.isEnabled() and not panel.prepare_button.isEnabled()
    panel.task.progressed.connect(lambda d, t, m: seen.append(m))
    qtbot.waitUntil(lambda: panel.task is None, timeout=180_000)
    assert (out / "prepare.json").is_file(), panel.status.text()
    assert "registered FLAIR to T1ce" in seen
    # the prepared case opens through the normal load path
    qtbot.waitUntil(lambda: len([ly for ly in viewer.layers if isinstance(ly, Image)]) == 4, timeout=60_000)
    qtbot.waitUntil(lambda: widget.task is None, timeout=10_000)
    qc = widget.qc_panel
    assert qc.isVisibleTo(widget) and qc.case_id == "p1"
    assert "Brain volume" in qc.qc_label.text() and "FLAIR:" in qc.qc_label.text()
    flair = next(ly for ly in viewer.layers if source_of(ly).modality == "flair")
    blending = flair.blending
    qc.qc_toggle.setChecked(True)
    outline = next(ly for ly in viewer.layers if source_of(ly).role == "qc")
    assert outline.visible and outline.data.max() == 1 and outline.data.shape == flair.data.shape
    assert flair.colormap.name == "magenta" and flair.blending == "additive"
    qc.qc_toggle.setChecked(False)
    assert flair.colormap.name == "gray" and flair.blending == blending and not outline.visible

    # a result on the prepared grid (a block of edema with a core), saved back onto the source
    src = source_of(flair)
    labels = np.zeros(flair.data.shape, np.uint8)
    c = [s // 2 for s in labels.shape]
    labels[c[0] - 9:c[0] + 9, c[1] - 20:c[1] + 20, c[2] - 20:c[2] + 20] = 2
    labels[c[0] - 6:c[0] + 6, c[1] - 8:c[1] + 8, c[2] - 8:c[2] + 8] = 3
    data, kwargs, _ = labels_layer_data(labels, LayerSource(info=src.info, role="prediction"), "model [p1]")
    pred = viewer.add_labels(data, **kwargs)
    _, save = viewer.window.add_plugin_dock_widget(PLUGIN, "Save")
    save.layer_combo.set_layer(pred)
    assert [save.target_combo.itemData(i) for i in range(save.target_combo.count())] == \
        ["case", "native", "dicom_seg"]
    seg_path = tmp_path / "out" / "p1_seg.dcm"
    seg_path.parent.mkdir()
    assert save.set_target("dicom_seg")
    save.path_edit.setText(str(seg_path))
    assert save.save() is not None
    qtbot.waitUntil(lambda: save.task is None, timeout=60_000)
    assert save.last_saved == seg_path and seg_path.is_file()
    before = seg_path.read_bytes()
    assert save.save() is None  # exists, Overwrite not ticked
    assert any("tick Overwrite" in m for m in notifications()) and seg_path.read_bytes() == before
    save.path_edit.setText(str(study / REDUCED["t1ce"] / "seg.dcm"))
    assert save.save() is None and not (study / REDUCED["t1ce"] / "seg.dcm").exists()
    assert any("inside the source DICOM study" in m for m in notifications())

    assert save.set_target("native")
    save.path_edit.setText(str(tmp_path / "out" / "native.nii.gz"))
    save.save()
    qtbot.waitUntil(lambda: save.task is None, timeout=60_000)
    native = nib.load(str(tmp_path / "out" / "native.nii.gz"))
    assert native.shape == (256, 256, 10)
    on_source = np.asarray(native.dataobj)
    assert set(np.unique(on_source)) == {0, 2, 4}  # BraTS 2021: ET stored as 4

    # the DICOM-SEG, read back, is the native map frame for frame; opened over its series
    assert panel.open_dicom_seg(seg_path) is not None
    qtbot.waitUntil(lambda: panel.task is None, timeout=60_000)
    layer = panel.last_seg_layer
    assert isinstance(layer, Labels) and not layer.editable  # a reference: locked
    series = panel.study.find(1201)
    expected = read_dicom_seg(seg_path, series)
    np.testing.assert_array_equal(expected, np.where(on_source == 4, 3, on_source))
    assert layer.data.shape == source_of(layer).geometry.internal_shape and layer.data.sum() > 0


def test_cancel_prepare_writes_nothing(make_napari_viewer, qtbot, dicom_study_dir: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    widget = _load_widget(viewer)
    _open_study(qtbot, widget, _reduced_study(dicom_study_dir, tmp_path / "study"))
    panel = widget.study_panel
    out = tmp_path / "prepared" / "p1"
    panel.output_edit.setText(str(out))
    panel.skull_strip_combo.setCurrentText("classical")
    task = panel.prepare()
    assert task is not None
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=120_000)
    assert panel.status.text() == "Cancelled: nothing was written."
    assert not out.exists() and panel.prepare_button.isEnabled()
    assert not [ly for ly in viewer.layers if isinstance(ly, Image)]


def test_dicom_seg_of_the_real_coronal_t1_opens_on_its_grid(make_napari_viewer, qtbot, dicom_study_dir: Path,
                                                            tmp_path: Path, notifications) -> None:
    from napari_brats_seg._napari.layers import source_of
    from napari_brats_seg.core.clinical.export import write_dicom_seg

    viewer = make_napari_viewer()
    widget = _load_widget(viewer)
    _open_study(qtbot, widget, dicom_study_dir)
    series = widget.study_panel.study.find(1101)
    labels = np.zeros((series.columns, series.rows, len(series.frames)), np.uint8)
    labels[100:140, 90:130, 80:100] = 2
    labels[110:125, 100:115, 85:95] = 1
    seg = write_dicom_seg(labels, series, tmp_path / "seg.dcm", model_name="test")
    assert widget.study_panel.open_dicom_seg(seg) is not None
    qtbot.waitUntil(lambda: widget.study_panel.task is None, timeout=60_000)
    layer = widget.study_panel.last_seg_layer
    geo = source_of(layer).geometry
    assert geo.shape == labels.shape
    np.testing.assert_array_equal(layer.data, geo.to_internal(labels))
    image = next(ly for ly in viewer.layers if isinstance(ly, Image) and source_of(ly).case_id == "series 1101")
    assert image.data.shape == layer.data.shape and tuple(image.scale) == tuple(layer.scale)
    # a file that is not a SEG, and a SEG of a series the study lacks, are refused by name
    assert widget.study_panel.open_dicom_seg(series.files[0]) is None
    assert any("not a DICOM Segmentation object" in m for m in notifications())
