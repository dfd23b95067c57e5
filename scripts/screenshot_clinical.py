"""The clinical path in napari, walked through the widgets on a real DICOM study (run under Xvfb).

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" python3 scripts/screenshot_clinical.py \\
        ../shared/data/dicom-study/patient1 WORK_DIR [--images docs/images] [--model unet3d-default] \\
        [--roles 502,1101,401,701]

Opens the study in the Load widget, sets the roles (T1, T1ce, T2, FLAIR series numbers), prepares it
into ``WORK_DIR/patient1`` with the default skull strip, turns on the QC view, segments the case in
the Segment widget, writes the labels as DICOM-SEG through the Save widget and opens that SEG over
its series. Screenshots of each step go to ``WORK_DIR``; ``clinical-qc.png`` (the QC view) also to
``--images`` when given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

PLUGIN = "napari-brats-seg"


def _wait(app, predicate, timeout: float = 1800.0) -> None:
    t0 = time.time()
    while not predicate():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError("timed out")


def _shot(viewer, app, path: Path, dock=None) -> None:
    if dock is not None:
        from qtpy.QtCore import Qt

        dock.show()
        dock.raise_()
        viewer.window._qt_window.resizeDocks([dock], [760], Qt.Orientation.Horizontal)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print("wrote", path)


def _axial_middle(viewer, layer) -> None:
    step = list(viewer.dims.current_step)
    step[0] = layer.data.shape[0] // 2 + 10
    viewer.dims.current_step = tuple(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("work_dir")
    parser.add_argument("--images", help="folder for the README picture (clinical-qc.png)")
    parser.add_argument("--model", default="unet3d-default")
    parser.add_argument("--roles", default="502,1101,401,701", help="T1,T1ce,T2,FLAIR series numbers")
    args = parser.parse_args()
    os.environ["NAPARI_BRATS_SEG_DATA_DIR"] = tempfile.mkdtemp(prefix="brats-seg-shot-")

    from qtpy.QtWidgets import QApplication

    import napari

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-brats-seg", show=True)
    app = QApplication.instance()
    viewer.window.resize(1600, 1100)
    load_dock, load = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    seg_dock, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment", tabify=True)
    save_dock, save = viewer.window.add_plugin_dock_widget(PLUGIN, "Save", tabify=True)

    load.inspect(args.study)
    panel = load.study_panel
    _wait(app, lambda: panel.task is None)
    for role, number in zip(("t1", "t1ce", "t2", "flair"), args.roles.split(","), strict=True):
        panel.choose(role, int(number))
    _shot(viewer, app, work / "clinical-1-study.png", load_dock)

    case_dir = work / Path(args.study).name
    shutil.rmtree(case_dir, ignore_errors=True)
    panel.output_edit.setText(str(case_dir))
    t0 = time.time()
    panel.prepare_button.click()
    _wait(app, lambda: panel.task is None)
    _wait(app, lambda: load.task is None and load.qc_panel.case_id is not None, timeout=300)
    print(f"prepared in {time.time() - t0:.0f} s:", panel.status.text())
    load.qc_panel.qc_toggle.setChecked(True)
    flair = next(ly for ly in viewer.layers if ly.name.startswith("FLAIR"))
    _axial_middle(viewer, flair)
    _shot(viewer, app, work / "clinical-qc.png", load_dock)  # docks first: the canvas width is final
    viewer.reset_view()
    viewer.camera.zoom *= 1.5
    _shot(viewer, app, work / "clinical-qc.png", load_dock)
    if args.images:
        Path(args.images).mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "clinical-qc.png", Path(args.images) / "clinical-qc.png")
    load.qc_panel.qc_toggle.setChecked(False)

    i = seg.model_combo.findData(args.model)
    if i < 0:
        seg.add_model(args.model)
    else:
        seg.model_combo.setCurrentIndex(i)
    seg.run_button.click()
    _wait(app, lambda: seg.task is None)
    print("segmented:", seg.status.text())
    _shot(viewer, app, work / "clinical-3-segmented.png", seg_dock)

    save.layer_combo.set_layer(seg.last_layer)
    save.set_target("dicom_seg")
    seg_path = work / "patient1_seg.dcm"
    save.path_edit.setText(str(seg_path))
    save.overwrite.setChecked(True)
    save.save()
    _wait(app, lambda: save.task is None)
    print("saved:", save.last_saved)
    _shot(viewer, app, work / "clinical-4-saved.png", save_dock)

    panel.open_dicom_seg(seg_path)
    _wait(app, lambda: panel.task is None)
    layer = panel.last_seg_layer
    import numpy as np

    z = int(np.argmax((np.asarray(layer.data) > 0).sum(axis=(1, 2))))
    step = list(viewer.dims.current_step)
    step[0] = z
    viewer.dims.current_step = tuple(step)
    _shot(viewer, app, work / "clinical-5-dicom-seg.png", load_dock)
    viewer.close()


if __name__ == "__main__":
    main()
