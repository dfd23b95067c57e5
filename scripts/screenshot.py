"""Screenshots of the plugin on a real BraTS case for the README (run under Xvfb).

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" python3 scripts/screenshot.py \\
        ../shared/data/brats2018/Brats18_2013_11_1 docs/images [--model NAME_OR_PATH] [--uncertainty]

Opens the case as ``brats-seg view`` does (workflow dock, axial canvas with the coronal and
sagittal views under it, radiological orientation) and writes

* ``napari-2d.png``: the whole window, the three planes through the tumour's centre, the legend
  with the live volumes of the labels shown, the Score widget filled;
* ``napari-3d.png``: the 3D view of the same labels (canvas only);
* with ``--uncertainty``: ``napari-uncertainty.png``, the axial canvas with the TTA uncertainty
  map and its colour bar.

With ``--model`` the case is segmented first (in the Segment widget's worker) and Score compares the
model's labels with the ground truth; without it, the ground truth is compared with a copy cleaned
by the Correct widget's *Remove small islands*.
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


def _settle(app, n: int = 30) -> None:
    for _ in range(n):
        app.processEvents()
        time.sleep(0.02)


def _segment(app, dock, model: str, uncertainty: bool):
    seg = dock.segment
    dock.open_section("segment")
    seg.add_model(model)
    seg.device_combo.setCurrentText("auto")
    seg.tta.setChecked(uncertainty)
    seg.uncertainty.setChecked(uncertainty)
    task = seg.run()
    _wait(app, lambda: seg.task is None)
    if task.error is not None:
        raise SystemExit(f"segmentation failed: {task.error}")
    info = seg.last_result.info
    print("segmented with", info.get("model"), "on", info.get("device"), info.get("dtype"),
          "in", info.get("seconds"), "s,", info.get("windows"), "windows")
    return seg.last_layer


def _cleaned_copy(viewer, dock, gt):
    from napari_brats_seg._napari.edits import remove_small_islands

    data, kwargs = np.array(gt.data, copy=True), {"name": "corrected", "metadata": dict(gt.metadata),
                                                    "scale": gt.scale, "translate": gt.translate,
                                                    "colormap": gt.colormap, "features": gt.features,
                                                    "opacity": gt.opacity}
    pred = viewer.add_labels(data, **kwargs)
    correct = dock.correct
    correct.layer_combo.set_layer(pred)
    correct.island_size.setValue(200)
    correct.run_edit("remove small islands", lambda a: remove_small_islands(a, 200))
    return pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case")
    parser.add_argument("out_dir")
    parser.add_argument("--model", help="shipped model name, checkpoint or model folder to run first")
    parser.add_argument("--uncertainty", action="store_true",
                        help="with --model: run with TTA and an uncertainty layer, write napari-uncertainty.png")
    args = parser.parse_args()
    import os
    import tempfile

    # Autosave recovery files of this scripted session go to a throw-away folder.
    os.environ["NAPARI_BRATS_SEG_DATA_DIR"] = tempfile.mkdtemp(prefix="brats-seg-shot-")

    from napari.layers import Image, Labels
    from qtpy.QtWidgets import QApplication

    from napari_brats_seg._napari.layers import source_of
    from napari_brats_seg._napari.widgets.view3d import show_3d
    from napari_brats_seg.commands.view import open_viewer

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer([args.case], show=True)
    app = QApplication.instance()
    viewer.window.resize(1600, 1100)
    dock = viewer.window.dock_widgets["Workflow (napari-brats-seg)"]
    gt = next(ly for ly in viewer.layers if isinstance(ly, Labels))

    pred = _segment(app, dock, args.model, args.uncertainty) if args.model else _cleaned_copy(viewer, dock, gt)
    score = dock.score
    score.reference_combo.set_layer(gt)
    score.prediction_combo.set_layer(pred)
    score.score()
    _wait(app, lambda: score.computed >= 1)
    dock.open_section("score", only=True)

    # The linked cursor at the centre of the tumour, on its axial slice of largest area.
    labels = np.asarray(pred.data)
    z = int(np.argmax((labels > 0).sum(axis=(1, 2))))
    ys, xs = np.nonzero(labels[z] > 0)
    centre = (z, int(np.median(ys)), int(np.median(xs)))
    viewer.dims.point = tuple(float(v) for v in pred.data_to_world(centre))
    gt.visible = False
    unc = [ly for ly in viewer.layers if (s := source_of(ly)) is not None and s.role == "uncertainty"]
    for ly in unc:
        ly.visible = False
    viewer.layers.selection.active = pred  # the legend shows the prediction's volumes
    viewer.reset_view()
    _settle(app)
    viewer.screenshot(str(out / "napari-2d.png"), canvas_only=False, flash=False)

    if unc:
        unc[0].visible = True
        pred.visible = False
        viewer.layers.selection.active = unc[0]
        _settle(app)
        viewer.screenshot(str(out / "napari-uncertainty.png"), canvas_only=True, flash=False)
        unc[0].visible = False
        pred.visible = True

    dock.display.show_three_planes(False)
    gt.visible = True
    show_3d(viewer, brain=next(ly for ly in viewer.layers if isinstance(ly, Image)
                               and (s := source_of(ly)) is not None and s.modality == "flair"))
    for ly in viewer.layers:
        if isinstance(ly, Labels) and ly.name != pred.name:
            ly.visible = False
    (viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera).zoom *= 1.3
    _settle(app)
    viewer.screenshot(str(out / "napari-3d.png"), canvas_only=True, flash=False)
    print("case", source_of(gt).case_id, "centre voxel", centre, "scores",
          {r: round(score.results[r]["dice"], 4) for r in ("WT", "TC", "ET")},
          "volumes mL", {k: round(v, 2) for k, v in dock.legend.volumes.items()})
    viewer.close()


if __name__ == "__main__":
    main()
