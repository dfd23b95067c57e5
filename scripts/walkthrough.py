"""A scripted correction session through the plugin's own widgets, checked at every step.

Usage (under Xvfb, or on a desktop)::

    xvfb-run -a -s "-screen 0 1600x1200x24" python3 scripts/walkthrough.py \\
        ../shared/data/brats2018/Brats18_2013_11_1 /tmp/walk [--crop 96] [--shots DIR]

Steps: *Load* the case (the ground truth opens locked) -> *Segment* with the widget's default model
-> *Correct*: a paint button, a brush stroke, *Remove small islands* -> *Undo* -> *Score* on its
defaults -> *Save*. After each step it checks the layers, the autosave recovery file (it must hold
exactly the layer's voxels, the undo included) and, at the end, the written NIfTI (the source grid,
the layer's labels). ``--crop N`` first writes an N^3 crop around the tumour (fast on a CPU);
``--shots`` saves a screenshot per step. Exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PLUGIN = "napari-brats-seg"
WIDGETS = ("Load", "Segment", "Correct", "Score", "Save")


def crop_case(case_dir: Path, out_root: Path, size: int) -> Path:
    """Write a ``size``^3 crop (voxels) around the tumour of a BraTS case folder; returns the new folder.

    The crop keeps file names and corrects the affine (``nibabel``'s slicer), so it is a valid case.
    """
    import nibabel as nib

    files = sorted(p for p in case_dir.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    seg = next(p for p in files if "_seg" in p.name)
    mask = np.asanyarray(nib.load(str(seg)).dataobj) > 0
    centre = np.round(np.argwhere(mask).mean(axis=0)).astype(int) if mask.any() else np.array(mask.shape) // 2
    box = []
    for c, n in zip(centre, mask.shape, strict=True):
        lo = int(np.clip(c - size // 2, 0, max(0, n - size)))
        box.append(slice(lo, min(n, lo + size)))
    out = out_root / case_dir.name
    out.mkdir(parents=True, exist_ok=True)
    for p in files:
        img = nib.load(str(p))
        nib.save(img.slicer[tuple(box)], str(out / p.name))
    return out


class Walk:
    """Drives the docked widgets of ``viewer`` and checks each step (:meth:`run`).

    Parameters
    ----------
    viewer
        A napari viewer with the plugin's widgets docked (:func:`dock`).
    widgets
        Display name -> widget.
    work_dir
        Where the saved labels go.
    shots
        Folder for a screenshot per step, or None.
    log
        Called with one line per step.
    """

    def __init__(self, viewer: Any, widgets: dict[str, Any], work_dir: Path, shots: Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        from qtpy.QtWidgets import QApplication

        self.viewer, self.w, self.work_dir, self.shots, self.log = viewer, widgets, work_dir, shots, log
        self.app = QApplication.instance()
        self.session = widgets["Correct"].session
        self.session.autosave.set_delay(50)
        self.steps: list[str] = []

    def pump(self, until: Callable[[], bool], timeout: float = 1800.0, what: str = "") -> None:
        """Process Qt events until ``until()`` holds."""
        t0 = time.time()
        while not until():
            self.app.processEvents()
            time.sleep(0.02)
            if time.time() - t0 > timeout:
                raise TimeoutError(f"timed out waiting for {what}")

    def check(self, ok: bool, what: str) -> None:
        """Fail the walk with ``what`` unless ``ok``."""
        if not ok:
            raise AssertionError(what)

    def step(self, name: str) -> None:
        """Record a passed step (and take its screenshot)."""
        self.steps.append(name)
        self.log(f"ok  {name}")
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            for _ in range(10):
                self.app.processEvents()
            self.viewer.screenshot(str(self.shots / f"{len(self.steps):02d}-{name}.png"), canvas_only=False,
                                   flash=False)

    def raise_tab(self, name: str) -> None:
        """Bring a widget's section (workflow dock) or dock tab to the front (for the screenshots)."""
        from qtpy.QtWidgets import QDockWidget

        if "_workflow" in self.w:
            self.w["_workflow"].open_section(name.lower(), only=True)
            return
        dock = self.w[name].parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None:
            dock.raise_()

    def recovery_matches(self, layer: Any) -> bool:
        """Whether the layer's recovery file holds exactly its voxels (autosave idle)."""
        from napari_brats_seg._napari.autosave import recovery_path

        path = recovery_path(self.session.current_case, layer.name)
        if self.session.autosave.pending or not path.exists():
            return False
        with np.load(path) as f:
            return np.array_equal(f["labels"], np.asarray(layer.data))

    # -- the steps ------------------------------------------------------------------------
    def load(self, case: Path) -> Any:
        load = self.w["Load"]
        load.inspect(str(case))
        self.check(load.geometry_ok, f"geometry check: {load.geometry_label.text()}")
        task = load.load()
        self.pump(lambda: load.task is None, 120, "the case to load")
        self.check(task.error is None, f"load failed: {task.error}")
        gt = self.session.reference()
        self.check(gt is not None and not gt.editable and self.session.is_locked(gt), "ground truth locked")
        self.viewer.reset_view()
        self.raise_tab("Load")
        self.step("load")
        return gt

    def segment(self) -> Any:
        seg = self.w["Segment"]
        self.log(f"    model: {seg.model_combo.currentText()}")
        task = seg.run()
        self.check(task is not None, "segmentation did not start")
        self.pump(lambda: seg.task is None, 3600, "the segmentation")
        self.check(task.error is None, f"segmentation failed: {task.error}")
        pred = seg.last_layer
        self.check(self.w["Correct"].layer() == pred, "Correct defaults to the new prediction")
        self.check(self.w["Save"].layer_combo.layer() == pred, "Save defaults to the new prediction")
        self.check(self.w["Score"].prediction_combo.layer() == pred, "Score defaults to the new prediction")
        self.pump(lambda: self.recovery_matches(pred), 30, "the autosave of the new prediction")
        info = seg.last_result.info
        self.log(f"    {info.get('model')} on {info.get('device')} in {info.get('seconds')} s")
        self.raise_tab("Segment")
        self.step("segment")
        return pred

    def edit(self, pred: Any) -> tuple[np.ndarray, np.ndarray]:
        correct = self.w["Correct"]
        correct.paint_buttons[2].click()
        self.check(self.viewer.layers.selection.active == pred and pred.mode == "paint",
                   "the paint button makes the prediction the active layer")
        # A brush stroke of edema in the middle slice, away from the tumour, then remove it as an island.
        z, y, x = (s // 2 for s in pred.data.shape)
        corner = (z, 3, 3)
        pred.brush_size = 3
        pred.paint(corner, 2)
        self.pump(lambda: self.recovery_matches(pred), 30, "the autosave of the brush stroke")
        brushed = np.array(pred.data, copy=True)
        kept = self.session.original_layer(pred)
        self.check(kept is not None and not kept.visible and not kept.editable, "model output kept hidden")
        correct.island_size.setValue(50)
        correct.islands_button.click()
        self.check(not np.array_equal(pred.data, brushed), "remove small islands changed the layer")
        self.pump(lambda: self.recovery_matches(pred), 30, "the autosave of the clean-up")
        self.raise_tab("Correct")
        self.step("edit")
        return brushed, np.array(pred.data, copy=True)

    def undo(self, pred: Any, brushed: np.ndarray) -> None:
        self.w["Correct"].undo_button.click()
        self.check(np.array_equal(pred.data, brushed), "undo restores the brushed state")
        self.pump(lambda: self.recovery_matches(pred), 30, "the autosave of the undo")
        self.step("undo")

    def score(self, gt: Any, pred: Any) -> dict:
        score = self.w["Score"]
        self.check(score.reference_combo.layer() == gt and score.prediction_combo.layer() == pred,
                   "Score defaults to ground truth vs prediction")
        n = score.computed
        score.score_button.click()
        self.pump(lambda: score.computed > n, 300, "the scores")
        self.log("    Dice " + ", ".join(f"{r} {score.results[r]['dice']:.3f}" for r in ("WT", "TC", "ET")))
        self.raise_tab("Score")
        self.step("score")
        return score.results

    def save(self, pred: Any) -> Path:
        from napari_brats_seg._napari.autosave import recovery_path
        from napari_brats_seg._napari.layers import source_of
        from napari_brats_seg.core.io import read_labels

        save = self.w["Save"]
        out = self.work_dir / f"{self.session.current_case}_corrected.nii.gz"
        save.path_edit.setText(str(out))
        save.overwrite.setChecked(True)
        save.save_button.click()
        self.check(save.last_saved == out and out.exists(), f"saved to {out}")
        src = source_of(pred)
        back, _scheme, geo = read_labels(out)
        self.check(np.array_equal(back, pred.data), "the file holds the layer's labels")
        self.check(geo.shape == src.geometry.shape and np.allclose(geo.affine, src.geometry.affine),
                   "the file lies on the source grid")
        self.check(not recovery_path(src.case_id, pred.name).exists(), "saving removed the recovery file")
        self.check(not self.session.is_dirty(pred), "no unsaved edits left")
        self.raise_tab("Save")
        self.step("save")
        return out

    def run(self, case: Path) -> dict:
        """Every step in order; returns a summary."""
        gt = self.load(case)
        pred = self.segment()
        brushed, _cleaned = self.edit(pred)
        self.undo(pred, brushed)
        results = self.score(gt, pred)
        out = self.save(pred)
        return {"steps": list(self.steps), "saved": out, "dice": {r: results[r]["dice"] for r in ("WT", "TC", "ET")}}


def dock(viewer: Any) -> dict[str, Any]:
    """Dock the plugin's workflow dock (as ``brats-seg view`` does); returns display name -> section widget."""
    _, workflow = viewer.window.add_plugin_dock_widget(PLUGIN, "Workflow")
    widgets = {name: getattr(workflow, name.lower()) for name in WIDGETS}
    widgets["_workflow"] = workflow
    return widgets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--crop", type=int, default=0, help="crop N^3 voxels around the tumour first")
    parser.add_argument("--shots", type=Path, help="folder for one screenshot per step")
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_BRATS_SEG_DATA_DIR", tempfile.mkdtemp(prefix="brats-seg-walk-"))
    import napari

    args.work_dir.mkdir(parents=True, exist_ok=True)
    case = crop_case(args.case, args.work_dir / "crop", args.crop) if args.crop else args.case
    viewer = napari.Viewer(title="napari-brats-seg walkthrough", show=True)
    viewer.window.resize(1600, 1000)
    walk = Walk(viewer, dock(viewer), args.work_dir, args.shots)
    try:
        summary = walk.run(case)
    except (AssertionError, TimeoutError) as exc:
        print(f"FAILED after {walk.steps}: {exc}", file=sys.stderr)
        return 1
    finally:
        walk.pump(lambda: walk.session.autosave.pending == 0, 30, "the last autosave")
        viewer.close()
    print("walkthrough passed:", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
