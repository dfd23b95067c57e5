"""How many interactions a correction takes: napari's brush alone against the plugin's tools (NoC).

A simulated user (``bench/correction_sim.py``) corrects a model's prediction toward the ground
truth, one interaction at a time, as interactive-segmentation papers count clicks: each step finds
the largest error region (a false-positive or false-negative 26-connected component, per class),
takes its interior point farthest from the region's border, and acts there: with napari's brush
(one drag of ``--brush`` voxels radius in the axial slice of the point, painting the class seen
there; background erases) or with the tool a user would choose (delete or relabel the component
under the point in one click, a margin when the error is a thin shell around the class, grow from
seeds or outline + fill between slices for a large region, redraw on a few slices for an error at
the tumour's border, else a drag of the intensity-limited 3D brush; ``--policy``). A step may take
several interactions (strokes, then clicks); every one counts, and nothing is undone by checking
the ground truth. A region the user acted on twice without visible progress (the class's wrong
voxels around it fell by less than 5 % of its size) is passed over from then on, in both arms.

It prints per case and as means: interactions to reach whole-tumour Dice 0.90 and 0.95 (NoC@90,
NoC@95; ``--cap`` when never reached), mean Dice of WT/TC/ET after 5, 10 and 20 interactions and
seconds per interaction (the tool's own time), the tools used; the last line is
``NoC@90 tools X brush Y`` (means).

The simulation starts from ``--model``'s predictions (default ``unet3d-default``, the shipped
default model, on the CPU), cached as ``.nii.gz`` under ``bench/out/correction_preds/`` (see
``correction_preds.py``) so re-runs skip the network. Not simulated: smoothing.

Usage::

    python bench/bench_correction.py ../shared/data/brats2018/Brats18_* [--model unet3d-default] [--cap 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import correction_actions
import correction_redraw
import correction_sim
from correction_preds import DEFAULT_MODEL, prediction, wt_probability
from correction_sim import (
    brush_step,
    futile,
    gave_up,
    interior_point,
    largest_error,
    note_futile,
    region_dice,
    tool_step,
    wrong_near,
)

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.case import MODALITIES
from napari_brats_seg.core.edit._common import bbox
from napari_brats_seg.core.io import read_case

CHECKPOINTS = (5, 10, 20)
#: Tools that act on the whole tumour: what they leave of a region does not count toward giving it up.
GLOBAL_TOOLS = ("confidence",)
#: The issue's bound on one interaction's compute time (s).
SLOW_S = 0.5


def simulate(pred: np.ndarray, gt: np.ndarray, step: Callable[..., list], cap: int,
             **kw: object) -> dict[str, object]:
    """Correct until WT Dice >= 0.95 (and at least 20 interactions) or ``cap`` interactions.

    Each step returns its interactions (strokes, clicks), each with the labels after it and the
    tool's own compute time; every one counts.
    """
    dice = [region_dice(pred, gt)]
    seconds: list[float] = []
    tools: Counter[str] = Counter()
    skip: list[np.ndarray] = []                      # regions the user gave up on
    tries: list[list] = []
    while len(dice) <= cap:
        if dice[-1]["WT"] >= 0.95 and len(dice) > max(CHECKPOINTS):
            break
        err = largest_error(pred, gt, skip)
        if err is None:
            dice.append(dice[-1])
            continue
        p, depth = interior_point(err.mask)
        before = wrong_near(err, pred, gt)
        steps = step(pred, gt, p, err=err, depth=depth, **kw)[: cap + 1 - len(dice)]
        for out, tool, sec in steps:
            seconds.append(sec)
            tools[tool.split(":")[0]] += 1
            dice.append(dice[-1] if out is pred else region_dice(out, gt))   # a stroke into seeds changes nothing
            pred = out
        was_futile = futile(err, before, pred, gt)
        if steps:
            note_futile(kw.get("state"), steps[-1][1].split(":")[0], was_futile)  # type: ignore[arg-type]
        if steps and steps[-1][1] in GLOBAL_TOOLS:     # aimed at the whole tumour, not at this region
            continue
        if gave_up(err, was_futile, tries):
            skip.append(err.mask)

    def noc(th: float) -> int:
        return next((i for i, d in enumerate(dice) if d["WT"] >= th), cap)

    after = {k: dice[min(k, len(dice) - 1)] for k in CHECKPOINTS}
    return {"noc90": noc(0.90), "noc95": noc(0.95), "after": after, "tools": dict(tools),
            "s": float(np.mean(seconds)) if seconds else 0.0,
            "s_max": float(np.max(seconds)) if seconds else 0.0, "start": dice[0],
            "slow": sum(t > SLOW_S for t in seconds), "n": len(seconds)}


def run_case(case_dir: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Both arms on one case, from ``args.model``'s (cached) prediction."""
    case = read_case(case_dir)
    pred = prediction(case, args.model)
    gt = case.ground_truth
    box = bbox((gt > 0) | (pred > 0), 12)
    gt, pred = gt[box], pred[box].astype(np.uint8)
    images = {m: case.images[m][box] for m in MODALITIES}
    stack = np.stack([images[m] for m in MODALITIES])
    if correction_sim.CONFIDENCE:
        images["wt_probability"] = wt_probability(case, args.model)[box]
    return {"tools": simulate(pred, gt, tool_step, args.cap, radius_mm=args.masked, images=images,
                              stack=stack, spacing=case.spacing, history=[], state={}),
            "brush": simulate(pred, gt, brush_step, args.cap, radius=args.brush, spacing=case.spacing)}


def _fmt(r: dict) -> str:
    a = " ".join(f"@{k}:" + "/".join(f"{r['after'][k][g]:.2f}" for g in lab.REGIONS) for k in CHECKPOINTS)
    return (f"NoC@90 {r['noc90']:5.2f} NoC@95 {r['noc95']:5.2f}  Dice WT/TC/ET {a}  "
            f"{r['s']:.3f} s/step (max {r['s_max']:.3f}, {r['slow']} of {r['n']} over {SLOW_S} s)")


def _summary(results: dict[str, dict], arm: str, cap: int) -> dict[str, object]:
    rs = [r[arm] for r in results.values()]
    after = {k: {g: float(np.mean([r["after"][k][g] for r in rs])) for g in lab.REGIONS} for k in CHECKPOINTS}
    return {"noc90": float(np.mean([r["noc90"] for r in rs])), "noc95": float(np.mean([r["noc95"] for r in rs])),
            "after": after, "s": float(np.mean([r["s"] for r in rs])),
            "s_max": float(np.max([r["s_max"] for r in rs])),
            "slow": sum(r["slow"] for r in rs), "n": sum(r["n"] for r in rs),
            "capped90": sum(r["noc90"] >= cap for r in rs), "capped95": sum(r["noc95"] >= cap for r in rs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", type=Path)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model name or file (default: %(default)s)")
    ap.add_argument("--cap", type=int, default=50)
    ap.add_argument("--brush", type=int, default=5, help="brush radius in voxels (napari's default size 10)")
    ap.add_argument("--masked", type=float, default=15.0,
                    help="largest radius of the intensity-limited 3D brush (mm)")
    ap.add_argument("--policy", choices=correction_sim.POLICIES, default=correction_sim.POLICY,
                    help="which tools the simulated user reaches for (see correction_sim.POLICY; default %(default)s)")
    ap.add_argument("--no-preview", action="store_true",
                    help="the simulated user paints every key slice of a grow whatever its preview shows")
    ap.add_argument("--no-confidence", action="store_true",
                    help="the simulated user has no Border by model confidence slider")
    ap.add_argument("--redraw-core", action="store_true",
                    help="redraw confusions of the core with edema too (as the tumour core)")
    args = ap.parse_args()
    correction_sim.POLICY, correction_redraw.REDRAW_CORE = args.policy, args.redraw_core
    correction_sim.CONFIDENCE = not args.no_confidence
    correction_actions.PREVIEW = not args.no_preview
    results = {}
    load0 = os.getloadavg()[0]
    for c in args.cases:
        r = run_case(c, args)
        results[c.name] = r
        start = r["tools"]["start"]
        print(f"{c.name}: start WT/TC/ET {start['WT']:.2f}/{start['TC']:.2f}/{start['ET']:.2f}", flush=True)
        for m in ("tools", "brush"):
            print(f"  {m:5s} {_fmt(r[m])}  {r[m]['tools']}", flush=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (at the start {load0:.1f})")
    means = {m: _summary(results, m, args.cap) for m in ("tools", "brush")}
    for m, s in means.items():
        print(f"mean {m:5s} {_fmt(s)}; never reached 0.90: {s['capped90']}, 0.95: {s['capped95']} "
              f"of {len(results)} (counted as {args.cap})")
    print(f"NoC@90 tools {means['tools']['noc90']:.2f} brush {means['brush']['noc90']:.2f}")


if __name__ == "__main__":
    main()
