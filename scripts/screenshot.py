"""Screenshots of the plugin on a real BraTS case for the README (run under Xvfb).

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" python3 scripts/screenshot.py \\
        ../shared/data/brats2018/Brats18_2013_11_1 docs/images [--model NAME_OR_PATH]

Writes ``napari-2d.png`` (the case with its labels on the axial slice of largest tumour area, every
widget docked, the Score widget filled) and ``napari-3d.png`` (the 3D view). With ``--model`` the
case is segmented first (in the Segment widget's worker) and the Score widget compares the model's
labels with the ground truth; without it, the ground truth is compared with a copy cleaned by the
Correct widget's *Remove small islands*.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _wait(app, predicate, timeout: float = 1800.0) -> None:
    t0 = time.time()
    while not predicate():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case")
    parser.add_argument("out_dir")
    parser.add_argument("--model", help="shipped model name, checkpoint or model folder to run first")
    args = parser.parse_args()
    import os
    import tempfile

    # Autosave recovery files of this scripted session go to a throw-away folder.
    os.environ["NAPARI_BRATS_SEG_DATA_DIR"] = tempfile.mkdtemp(prefix="brats-seg-shot-")

    from napari.layers import Labels
    from qtpy.QtWidgets import QApplication

    from napari_brats_seg._napari.layers import source_of
    from napari_brats_seg.commands.view import open_viewer

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer([args.case], show=True)
    app = QApplication.instance()
    viewer.window.resize(1600, 1000)
    docks = viewer.window.dock_widgets
    gt = next(ly for ly in viewer.layers if isinstance(ly, Labels))

    if args.model:
        seg = docks["Segment (napari-brats-seg)"]
        seg.add_model(args.model)
        seg.device_combo.setCurrentText("auto")
        task = seg.run()
        _wait(app, lambda: seg.task is None)
        if task.error is not None:
            raise SystemExit(f"segmentation failed: {task.error}")
        pred = seg.last_layer
        info = seg.last_result.info
        print("segmented with", info.get("model"), "on", info.get("device"), info.get("dtype"),
              "in", info.get("seconds"), "s,", info.get("windows"), "windows")
    else:
        data, kwargs = np.array(gt.data, copy=True), {"name": "corrected", "metadata": dict(gt.metadata),
                                                        "scale": gt.scale, "translate": gt.translate,
                                                        "colormap": gt.colormap, "features": gt.features,
                                                        "opacity": gt.opacity}
        pred = viewer.add_labels(data, **kwargs)
        correct = docks["Correct (napari-brats-seg)"]
        correct.layer_combo.set_layer(pred)
        correct.island_size.setValue(200)
        correct.run_edit("remove small islands",
                         lambda a: __import__("napari_brats_seg._napari.edits", fromlist=["x"])
                         .remove_small_islands(a, 200))
    score = docks["Score (napari-brats-seg)"]
    score.reference_combo.set_layer(gt)
    score.prediction_combo.set_layer(pred)
    score.score()
    _wait(app, lambda: score.computed >= 1)
    from qtpy.QtWidgets import QDockWidget

    dock = score.parentWidget()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is not None:
        dock.raise_()  # bring the Score tab to the front

    z = int(np.argmax((np.asarray(gt.data) > 0).sum(axis=(1, 2))))
    step = list(viewer.dims.current_step)
    step[0] = z
    viewer.dims.current_step = tuple(step)
    gt.visible = False
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(str(out / "napari-2d.png"), canvas_only=False, flash=False)

    from napari_brats_seg._napari.widgets.view3d import show_3d

    gt.visible = True
    show_3d(viewer)
    for ly in viewer.layers:
        if isinstance(ly, Labels) and ly.name != pred.name:  # widget layers may be public-API proxies
            ly.visible = False
    (viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera).zoom *= 1.3
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(str(out / "napari-3d.png"), canvas_only=True, flash=False)
    print("case", source_of(gt).case_id, "slice", z, "scores", {r: round(score.results[r]["dice"], 4)
                                                                 for r in ("WT", "TC", "ET")})
    viewer.close()


if __name__ == "__main__":
    main()
