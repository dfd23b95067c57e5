"""Child process of the kill -9 tests (``test_crash_recovery.py``): a real viewer with the Correct
widget; it tries to edit the locked ground truth, edits a model's prediction (brush, remove islands),
undoes the island removal, waits until autosave has written, reports ``READY`` and waits to be killed.

Usage: ``python _crash_child.py OUT_DIR`` (``$NAPARI_BRATS_SEG_DATA_DIR`` names the data directory).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def _pump(app, until, timeout: float = 30.0) -> None:
    t0 = time.time()
    while not until():
        app.processEvents()
        time.sleep(0.01)
        if time.time() - t0 > timeout:
            raise TimeoutError("the child timed out")


def main(out_dir: Path) -> None:
    from napari.layers import Labels
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_brats_seg._napari import autosave
    from napari_brats_seg._napari.layers import case_layer_data, labels_layer_data, source_of
    from napari_brats_seg._napari.widgets._qt import add_layer_data
    from napari_brats_seg.core.synth import synth_case

    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    _, correct = viewer.window.add_plugin_dock_widget("napari-brats-seg", "Correct")
    correct.autosave.set_delay(20)
    case = synth_case(3, (64, 64, 48), case_id="crash-case")
    gt = next(ly for ly in add_layer_data(viewer, case_layer_data(case)) if isinstance(ly, Labels))
    gt_data = np.array(gt.data, copy=True)
    model = np.array(gt_data, copy=True)
    model[model == 3] = 1                                  # the "model" calls the enhancing rim necrotic
    data, kwargs, _ = labels_layer_data(model.copy(), replace(source_of(gt), role="prediction"),
                                        "model [crash-case]")
    pred = viewer.add_labels(data, **kwargs)

    # 1. The reference: its paint button refuses, and an edit through its paint API is reverted.
    correct.layer_combo.set_layer(gt)
    correct.pick_label(2)
    gt.paint((24, 32, 32), 2)
    _pump(app, lambda: np.array_equal(gt.data, gt_data))
    # 2. The prediction: a speck, remove islands (the speck goes), Undo (the speck comes back).
    correct.layer_combo.set_layer(pred)
    pred.brush_size = 3
    pred.paint((5, 5, 5), 2)
    correct.island_size.setValue(50)
    correct.islands_button.click()
    cleaned = np.array(pred.data, copy=True)
    correct.undo_button.click()
    post_undo = np.array(pred.data, copy=True)
    assert not np.array_equal(cleaned, post_undo)
    rec = autosave.recovery_path("crash-case", pred.name)

    def written() -> bool:
        if correct.autosave.pending or not rec.exists():
            return False
        with np.load(rec) as f:
            return np.array_equal(f["labels"], post_undo)

    _pump(app, written)
    np.savez(out_dir / "expected.npz", post_undo=post_undo, cleaned=cleaned, model=model, gt=gt_data)
    print("READY", flush=True)
    while True:  # the parent kills this process with SIGKILL now
        app.processEvents()
        time.sleep(0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
