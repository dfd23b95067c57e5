"""An illustrated correction session for the README: a real viewer, the Correct widget's controls.

Usage (under Xvfb)::

    xvfb-run -a -s "-screen 0 1600x1200x24" python3 scripts/correction_screenshots.py \\
        ../shared/data/brats2018/Brats18_2013_11_1 docs/images [--model unet3d-default]

Opens the case as ``brats-seg view`` does, segments it with ``--model`` (the Segment widget's
worker), then corrects the prediction through the Correct widget's public controls, one
screenshot (``correction-N-*.png``, the whole window scaled to ``--width`` pixels) per step:

1. ``prediction``: the model's labels, on the slice through its largest false-positive component
   (a component of which at least 90 % lies outside the reference labels);
2. ``delete``: *Pick a component*, whole tumour, *delete*, one click on that component;
3. ``strokes``: *New seeds layer*, strokes of edema inside the largest missed edema and of
   background just outside it on its key slices (the benchmark's simulated strokes,
   ``bench/correction_actions.py``, written into the seeds layer as a brush would);
4. ``grown``: *Grow from seeds* with *May change: only background*;
5. ``redraw``: *Redraw on a few slices*, *New outline layer*, whole tumour, then on three axial
   slices (a quarter, half and three quarters of the reference whole tumour's height) the outer
   border of the reference whole tumour's section traced into the outline layer, one drag
   around each part, with *Redraw again as outlines are added* on (shown on the middle slice,
   the outlines in magenta, with the previous shot's crosshair);
6. ``margin``: *Margin* of ``--margin-target`` by ``--margin-mm`` (default: the whole tumour shrunk
   by 1 mm);
7. ``score``: *Undo* (the margin taken back in one step), then Score, the reference against the
   corrected labels.

The reference labels of the case play the reader's eye (where the model is wrong); the script
prints the Dice after each step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: Largest PNG kept in full colour (bytes); larger ones are written with a 256-colour palette.
MAX_BYTES = 290_000
sys.path[:0] = [str(HERE), str(HERE.parent / "bench")]


def _false_component(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int] | None:
    """A voxel deep inside the largest predicted tumour component that is >= 90 % outside ``gt``, on
    the axial slice where that component is largest."""
    from scipy import ndimage

    comp, n = ndimage.label(pred > 0, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return None
    size = np.bincount(comp.ravel(), minlength=n + 1)
    outside = np.bincount(comp.ravel(), weights=(gt == 0).ravel(), minlength=n + 1)
    ok = [k for k in range(1, n + 1) if outside[k] >= 0.9 * size[k]]
    if not ok:
        return None
    k = max(ok, key=lambda i: size[i])
    mask = comp == k
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    d = ndimage.distance_transform_edt(mask[z])
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return z, int(y), int(x)


def _missed(pred: np.ndarray, gt: np.ndarray, cls: int):
    """The largest false-negative component of class ``cls`` as the benchmark's ErrorRegion."""
    from correction_sim import CONN, ErrorRegion
    from scipy import ndimage

    comp, n = ndimage.label((gt == cls) & (pred != cls), structure=CONN)
    if n == 0:
        return None
    k = 1 + int(np.argmax(np.bincount(comp.ravel())[1:]))
    mask = comp == k
    return ErrorRegion("fn", cls, mask, int(mask.sum()))




def _key_slices(gt: np.ndarray) -> list[int]:
    """Three axial slices through the reference whole tumour: a quarter, half and three quarters
    of its height."""
    zs = np.flatnonzero((gt > 0).any(axis=(1, 2)))
    if zs.size == 0:
        return []
    return sorted({int(zs[round(f * (zs.size - 1))]) for f in (0.25, 0.5, 0.75)})


def _traced(section: np.ndarray, width: int = 2) -> np.ndarray:
    """The outer border (``width`` voxels) of each part of a 2D section, holes filled: what one
    drag of a brush around each part leaves. The parts are those the benchmark's reader outlines
    (``correction_redraw.outline_parts``: specks under its ``MIN_PART`` voxels left out)."""
    from correction_redraw import outline_parts
    from scipy import ndimage

    kept = np.zeros(section.shape, dtype=bool)
    for part in outline_parts(section):
        kept |= part
    return kept & ~ndimage.binary_erosion(kept, iterations=width)


class Shots:
    """Pumps Qt events, places the cursor and writes scaled screenshots."""

    def __init__(self, viewer, app, out: Path, width: int) -> None:
        self.viewer, self.app, self.out, self.width = viewer, app, out, width

    def settle(self, n: int = 30) -> None:
        from screenshot import _settle

        _settle(self.app, n)

    def wait(self, predicate, timeout: float = 600.0) -> None:
        from screenshot import _wait

        _wait(self.app, predicate, timeout)

    def goto(self, layer, voxel) -> None:
        self.viewer.dims.point = tuple(float(v) for v in layer.data_to_world(voxel))

    def close_toasts(self) -> None:
        """Close the notification pop-ups (they would hide part of the canvas; the status line keeps the text)."""
        try:
            from napari._qt.dialogs.qt_notification import NapariQtNotification
        except ImportError:                      # another napari: leave them
            return
        for w in self.viewer.window._qt_window.findChildren(NapariQtNotification):
            w.close()

    def take(self, name: str) -> Path:
        from PIL import Image

        self.settle()
        self.close_toasts()
        self.settle(10)
        img = np.asarray(self.viewer.screenshot(canvas_only=False, flash=False))
        pil = Image.fromarray(img[..., :3])
        if pil.width > self.width:
            pil = pil.resize((self.width, round(pil.height * self.width / pil.width)), Image.LANCZOS)
        path = self.out / f"{name}.png"
        pil.save(path, optimize=True)
        if path.stat().st_size > MAX_BYTES:        # a 256-colour palette (octree keeps the label colours)
            pil.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)
        return path


def _dice(pred: np.ndarray, gt: np.ndarray) -> str:
    from correction_sim import region_dice

    return " ".join(f"{k} {v:.3f}" for k, v in region_dice(pred, gt).items())


def _open(tools, title: str) -> None:
    """Expand the Correct tools' section whose title starts with ``title``, collapse the others."""
    for section in tools.sections:
        (section.expand if section.text().startswith(title) else section.collapse)(animate=False)


def session(args: argparse.Namespace) -> None:
    """The steps of the session (see the module's docstring)."""
    from napari.layers import Labels
    from qtpy.QtWidgets import QApplication
    from screenshot import _segment

    from napari_brats_seg.commands.view import open_viewer

    args.out_dir.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer([str(args.case)], show=True)
    viewer.window.resize(1600, 1100)
    shots = Shots(viewer, QApplication.instance(), args.out_dir, args.width)
    dock = viewer.window.dock_widgets["Workflow (napari-brats-seg)"]
    ref = next(ly for ly in viewer.layers if isinstance(ly, Labels))
    pred = _segment(shots.app, dock, args.model, False)
    gt = np.asarray(ref.data)
    ref.visible = False
    dock.correct.layer_combo.set_layer(pred)
    dock.open_section("correct", only=True)
    print("model:", _dice(np.asarray(pred.data), gt))
    _delete(shots, dock.correct.tools, pred, ref)
    _grow(shots, dock.correct.tools, pred, gt)
    _redraw(shots, dock.correct.tools, pred, gt)
    _margin(shots, dock.correct, pred, gt, args)
    score = dock.score
    score.reference_combo.set_layer(ref)
    score.prediction_combo.set_layer(pred)
    n = score.computed
    score.score()
    shots.wait(lambda: score.computed > n)
    dock.open_section("score", only=True)
    shots.take("correction-7-score")
    viewer.close()


def _delete(shots: Shots, tools, pred, ref) -> None:
    """Steps 1-2: the false-positive component, deleted in one click."""
    gt = np.asarray(ref.data)
    _open(tools, "Pick a component")
    fp = _false_component(np.asarray(pred.data), gt)
    if fp is None:
        return
    shots.goto(pred, fp)
    shots.viewer.layers.selection.active = pred
    ref.contour, ref.visible = 1, True        # the reference as outlines: where the model is wrong
    shots.take("correction-1-prediction")
    tools.component_scope.setCurrentText("whole tumour")
    tools.component_action.setCurrentText("delete")
    tools.pick_button.click()                   # armed: the next click in the view acts
    tools.component_at(fp)                      # what that click calls
    shots.take("correction-2-delete")
    tools.pick_button.click()
    ref.visible = False
    print("after delete:", _dice(np.asarray(pred.data), gt))


def _grow(shots: Shots, tools, pred, gt: np.ndarray) -> None:
    """Steps 3-4: strokes on the largest missed edema, grown into background only."""
    from correction_actions import seed_strokes

    err = _missed(np.asarray(pred.data), gt, 2)
    if err is None:
        return
    _open(tools, "Grow from seeds")
    tools.grow.seeds_button.click()
    seeds = tools.grow.seeds_layer
    strokes = seed_strokes(gt, err, 2, 0, tuple(tools.spacing(pred)))
    data = np.zeros(gt.shape, np.uint8)
    for z, mask, value in strokes:
        data[z][mask] = value
    with seeds.block_history():
        idx = np.nonzero(data)
        seeds.data_setitem(idx, data[idx])
    z_show = strokes[len(strokes) // 2][0]
    ys, xs = np.nonzero(data[z_show])
    shots.goto(pred, (z_show, int(np.median(ys)), int(np.median(xs))))
    tools.grow.grow_editable.setCurrentText("only background")
    tools.grow.grow_margin.setValue(8.0)
    opacity, pred.opacity = pred.opacity, 0.3         # the strokes stand out over the labels
    shots.take("correction-3-strokes")
    pred.opacity = opacity
    tools.grow.grow_button.click()
    shots.wait(lambda: tools.grow.grow_task is None)
    seeds.visible = False
    shots.viewer.layers.selection.active = pred
    shots.take("correction-4-grown")
    print("after grow:", _dice(np.asarray(pred.data), gt), f"({len(strokes)} strokes)")


def _redraw(shots: Shots, tools, pred, gt: np.ndarray) -> None:
    """Step 5: the reference whole tumour's border traced on three axial slices, redrawn."""
    from scipy import ndimage

    zs = _key_slices(gt)
    if not zs:
        return
    rd = tools.redraw
    _open(tools, "Redraw on a few slices")
    rd.outline_button.click()
    outlines = rd.outline_layer
    outlines.opacity = 1.0                         # (the widget draws outlines in magenta)
    rd.region_combo.setCurrentIndex(rd.region_combo.findData("WT"))
    rd.auto_check.setChecked(True)
    before = np.array(pred.data, copy=True)
    for z in zs:                                   # one drag around each part of each section
        parts, n = ndimage.label(_traced(gt[z] > 0))
        for k in range(1, n + 1):
            ring = np.zeros(gt.shape, bool)
            ring[z] = parts == k
            with outlines.block_history():
                outlines.data_setitem(np.nonzero(ring), 1)     # emits the paint event
            shots.settle(2)
    shots.wait(lambda: not rd.timer.isActive())   # the automatic redraw after the last stroke
    changed = int((before != np.asarray(pred.data)).sum())
    _, y, x = np.round(pred.world_to_data(shots.viewer.dims.point)).astype(int)
    shots.goto(pred, (zs[len(zs) // 2], y, x))      # the previous shot's crosshair: the two compare
    shots.viewer.layers.selection.active = pred     # its volumes in the table, the outlines visible
    shots.take("correction-5-redraw")
    outlines.visible = False
    print("after redraw:", _dice(np.asarray(pred.data), gt), f"(slices {zs}, {changed} voxels changed)")


def _margin(shots: Shots, correct, pred, gt: np.ndarray, args: argparse.Namespace) -> None:
    """Step 6: a margin, then Undo (the margin taken back in one step)."""
    tools = correct.tools
    _open(tools, "Margin and smoothing")
    tools.target_combo.setCurrentText(args.margin_target)
    tools.margin_mm.setValue(args.margin_mm)
    tools.margin_button.click()
    shots.viewer.layers.selection.active = pred
    shots.take("correction-6-margin")
    print("after margin:", _dice(np.asarray(pred.data), gt))
    before = np.array(pred.data, copy=True)
    correct.undo_button.click()                     # the margin taken back: one undo step
    print("after undo:", _dice(np.asarray(pred.data), gt), "changed back:", int((before != pred.data).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", default="unet3d-default")
    parser.add_argument("--margin-target", default="whole tumour (WT)")
    parser.add_argument("--margin-mm", type=float, default=-1.0, help="negative: shrink (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1280, help="width of the PNGs (pixels)")
    args = parser.parse_args()
    import os
    import tempfile

    # Autosave recovery files of this scripted session go to a throw-away folder.
    os.environ["NAPARI_BRATS_SEG_DATA_DIR"] = tempfile.mkdtemp(prefix="brats-seg-shot-")
    session(args)


if __name__ == "__main__":
    main()
