"""How many interactions a correction takes: napari's brush alone against the plugin's tools (NoC).

A simulated user corrects a model's prediction toward the ground truth, one interaction at a time,
as interactive-segmentation papers count clicks: each step finds the largest error region (a
false-positive or false-negative 6-connected component, per class), takes its interior point
farthest from the region's border, and acts there:

- **brush**: one stroke of napari's brush (a disc of ``--brush`` voxels radius in the axial slice of
  the point) painting the true class of the point (background erases);
- **tools**: the tool a user would choose there: when most of the predicted component under the
  point has one true class, *delete* it (true class background) or *relabel* it (one click, the
  Correct widget's *Pick a component*); else an *intensity-limited 3D brush* dab of ``--masked``
  mm radius, window picked from the voxel (FLAIR for edema and background, T1ce for the core).
  A tool step that lowers the mean of the WT/TC/ET Dice is undone by the user and replaced by a
  brush stroke (counted as one interaction; the undo is not counted).

It prints per case and as means: interactions to reach whole-tumour Dice 0.90 and 0.95 (NoC@90,
NoC@95; capped at ``--cap``), mean Dice of WT/TC/ET after 5, 10 and 20 interactions and seconds per
interaction (the tool's own time); the last line is ``NoC@90 tools X brush Y`` (means).

The predictions are read from ``--pred-dir`` (default: the CaPTk DeepMedic reference predictions of
the original implementation in ../shared), not computed here. Not simulated: grow from seeds, fill
between slices, margins and smoothing (a user would use them too; the simulation does not).

Usage::

    python bench/bench_correction.py ../shared/data/brats2018/Brats18_* [--cap 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import components, masks
from napari_brats_seg.core.edit._common import bbox
from napari_brats_seg.core.io import read_case, read_labels

ROOT = Path(__file__).resolve().parents[1]
PRED_DIR = ROOT.parent / "shared/models/captk-deepmedic/reference_predictions"
CHECKPOINTS = (5, 10, 20)


def region_dice(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    out = {}
    for name, classes in lab.REGION_CLASSES.items():
        p, g = np.isin(pred, classes), np.isin(gt, classes)
        s = int(p.sum() + g.sum())
        out[name] = 1.0 if s == 0 else 2.0 * int((p & g).sum()) / s
    return out


def largest_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray | None:
    """The largest false-positive or false-negative component of any class (6-connected)."""
    best, size = None, 0
    for c in lab.TUMOUR_CLASSES:
        for err in ((pred == c) & (gt != c), (gt == c) & (pred != c)):
            comp, n = ndimage.label(err)
            if n == 0:
                continue
            counts = np.bincount(comp.ravel())[1:]
            k = int(np.argmax(counts))
            if counts[k] > size:
                best, size = comp == k + 1, int(counts[k])
    return best


def interior_point(mask: np.ndarray) -> tuple[int, int, int]:
    box = bbox(mask, 1)
    d = ndimage.distance_transform_edt(mask[box])
    local = np.unravel_index(int(np.argmax(d)), d.shape)
    return tuple(int(i + b.start) for i, b in zip(local, box))  # type: ignore[return-value]


def brush_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], radius: int, **_: object) -> np.ndarray:
    out = pred.copy()
    yy, xx = np.ogrid[: pred.shape[1], : pred.shape[2]]
    disc = (yy - p[1]) ** 2 + (xx - p[2]) ** 2 <= radius ** 2
    out[p[0]][disc] = gt[p]
    return out


def tool_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], radius_mm: float,
              images: dict[str, np.ndarray], spacing: tuple[float, float, float], radius: int) -> np.ndarray:
    """The tool's result, or (when it lowers the mean Dice: the user undoes it) a brush stroke."""
    out = _tool(pred, gt, p, radius_mm, images, spacing)
    if np.mean(list(region_dice(out, gt).values())) < np.mean(list(region_dice(pred, gt).values())):
        return brush_step(pred, gt, p, radius)
    return out


def _tool(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], radius_mm: float,
          images: dict[str, np.ndarray], spacing: tuple[float, float, float]) -> np.ndarray:
    true = int(gt[p])
    if pred[p] != lab.BACKGROUND:
        comp = components.component_at(pred, p, "class")
        if np.mean(gt[comp] == true) >= 0.5:
            if true == lab.BACKGROUND:
                return components.delete_component(pred, p)
            return components.relabel_component(pred, p, true)
    image = images["flair"] if true in (lab.EDEMA, lab.BACKGROUND) else images["t1ce"]
    lo, hi = masks.window_at(image, p)
    v = float(image[p])
    return masks.masked_brush(pred, image, p, radius_mm, true, (min(lo, v), max(hi, v)), spacing, axis=None)


def simulate(pred: np.ndarray, gt: np.ndarray, step: Callable[..., np.ndarray], cap: int,
             **kw: object) -> dict[str, object]:
    """Correct until WT Dice >= 0.95 (and at least 20 steps) or ``cap`` interactions."""
    dice = [region_dice(pred, gt)]
    seconds: list[float] = []
    for _ in range(cap):
        if dice[-1]["WT"] >= 0.95 and len(dice) > max(CHECKPOINTS):
            break
        err = largest_error(pred, gt)
        if err is None:
            dice.append(dice[-1])
            continue
        p = interior_point(err)
        t0 = time.perf_counter()
        pred = step(pred, gt, p, **kw)
        seconds.append(time.perf_counter() - t0)
        dice.append(region_dice(pred, gt))

    def noc(th: float) -> int:
        return next((i for i, d in enumerate(dice) if d["WT"] >= th), cap)

    after = {k: dice[min(k, len(dice) - 1)] for k in CHECKPOINTS}
    return {"noc90": noc(0.90), "noc95": noc(0.95), "after": after,
            "s": float(np.mean(seconds)) if seconds else 0.0, "start": dice[0]}


def run_case(case_dir: Path, pred_dir: Path, args: argparse.Namespace) -> dict[str, dict]:
    case = read_case(case_dir)
    pred, _, _ = read_labels(pred_dir / f"{case.case_id}_deepmedic.nii.gz", geometry=case.geometry)
    gt = case.ground_truth
    box = bbox((gt > 0) | (pred > 0), 12)
    gt, pred = gt[box], pred[box].astype(np.uint8)
    images = {m: case.images[m][box] for m in ("flair", "t1ce")}
    return {"tools": simulate(pred, gt, tool_step, args.cap, radius_mm=args.masked, images=images,
                              spacing=case.spacing, radius=args.brush),
            "brush": simulate(pred, gt, brush_step, args.cap, radius=args.brush)}


def _fmt(r: dict) -> str:
    a = " ".join(f"@{k}:" + "/".join(f"{r['after'][k][g]:.2f}" for g in lab.REGIONS) for k in CHECKPOINTS)
    return f"NoC@90 {r['noc90']:2d} NoC@95 {r['noc95']:2d}  Dice WT/TC/ET {a}  {r['s']:.3f} s/step"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", type=Path)
    ap.add_argument("--pred-dir", type=Path, default=PRED_DIR)
    ap.add_argument("--cap", type=int, default=50)
    ap.add_argument("--brush", type=int, default=5, help="brush radius in voxels (napari's default size 10)")
    ap.add_argument("--masked", type=float, default=8.0, help="intensity-limited brush radius (mm)")
    args = ap.parse_args()
    results = {}
    for c in args.cases:
        r = run_case(c, args.pred_dir, args)
        results[c.name] = r
        start = r["tools"]["start"]
        print(f"{c.name}: start WT/TC/ET {start['WT']:.2f}/{start['TC']:.2f}/{start['ET']:.2f}", flush=True)
        for m in ("tools", "brush"):
            print(f"  {m:5s} {_fmt(r[m])}", flush=True)
    means = {}
    for m in ("tools", "brush"):
        rs = [r[m] for r in results.values()]
        means[m] = float(np.mean([r["noc90"] for r in rs]))
        after = {k: {g: float(np.mean([r["after"][k][g] for r in rs])) for g in lab.REGIONS} for k in CHECKPOINTS}
        summary = {"noc90": round(means[m]), "noc95": round(float(np.mean([r["noc95"] for r in rs]))),
                   "after": after, "s": float(np.mean([r["s"] for r in rs]))}
        print(f"mean {m:5s} " + _fmt(summary))
        print(f"  exact means: NoC@90 {means[m]:.2f} NoC@95 {np.mean([r['noc95'] for r in rs]):.2f}")
    print(f"NoC@90 tools {means['tools']:.2f} brush {means['brush']:.2f}")


if __name__ == "__main__":
    main()
