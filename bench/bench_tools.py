"""Time of each correction tool (core.edit) on a tumour-sized region and on a whole case.

For each tool it prints the best of ``--repeats`` runs on an 80^3 crop around the tumour and on the
whole 240 x 240 x 155 case, and a reference run in the same process: the naive whole-volume way
(``ndimage.label`` / ``distance_transform_edt`` / ``binary_closing`` / ``median_filter`` on the
whole volume) or, for grow from seeds, the random walker at full resolution instead of on the
coarsened grid; ``ratio`` = reference / tool on the whole case.

Usage::

    python bench/bench_tools.py [--case ../shared/data/brats2018/Brats18_2013_11_1] [--repeats 3] [--only grow]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_brats_seg.core.edit import (
    components,
    confidence,
    enhancement,
    grow,
    interpolate,
    logic,
    margins,
    masks,
    redraw,
)
from napari_brats_seg.core.io import read_case

ROOT = Path(__file__).resolve().parents[1]


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def crop_around(labels: np.ndarray, size: int = 80) -> tuple[slice, ...]:
    idx = np.argwhere(labels > 0)
    centre = (idx.min(0) + idx.max(0)) // 2
    start = np.clip(centre - size // 2, 0, np.array(labels.shape) - size)
    return tuple(slice(int(s), int(s) + size) for s in start)


def strokes(labels: np.ndarray, every: int = 9) -> np.ndarray:
    """Seed strokes from a label map: sparse voxels of each class on three slices, background rims."""
    seeds = np.zeros_like(labels)
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    for z in zs[[len(zs) // 4, len(zs) // 2, 3 * len(zs) // 4]]:
        for cls in (1, 2, 3):
            ys, xs = np.nonzero(labels[z] == cls)
            seeds[z, ys[::every], xs[::every]] = cls
        box = ndimage.binary_dilation(labels[z] > 0, iterations=4) & ~ndimage.binary_dilation(labels[z] > 0,
                                                                                             iterations=3)
        seeds[z][box] = grow.BACKGROUND_SEED
    return seeds


def tools(labels: np.ndarray, images: np.ndarray, sp: tuple[float, float, float]) -> dict[str, Callable]:
    """The tools as closures over one label map (a region or the whole case)."""
    point = tuple(np.argwhere(labels == 2)[len(np.argwhere(labels == 2)) // 2])
    et = interpolate.key_slices(labels, 3)
    outlined = labels.copy()
    for z in et:
        if (z - et[0]) % 5 and z != et[-1]:
            outlined[z][outlined[z] == 3] = 0
    seeds = strokes(labels)
    flair = images[3]
    win = masks.window_at(flair, point)
    other = np.roll(labels, 3, axis=2)
    wt = labels > 0
    outlines = np.zeros(labels.shape, np.uint8)
    for z in interpolate.key_slices(wt.astype(np.uint8), 1)[1::10][:3]:     # 3 outlined slices
        outlines[z][ndimage.binary_fill_holes(wt[z])] = 1
    depth = ndimage.distance_transform_edt(wt, sampling=sp) - ndimage.distance_transform_edt(~wt, sampling=sp)
    prob = confidence.quantise(1.0 / (1.0 + np.exp(-depth / 2.0)))      # a smooth WT probability
    return {
        "delete component": lambda: components.delete_component(labels, point, "tumour"),
        "relabel component": lambda: components.relabel_component(labels, point, 1),
        "margin +2 mm (WT)": lambda: margins.margin(labels, "WT", 2.0, sp),
        "margin -2 mm (WT)": lambda: margins.margin(labels, "WT", -2.0, sp),
        "closing 2 mm (WT)": lambda: margins.smooth(labels, "WT", "closing", 2.0, sp),
        "median 3 mm (WT)": lambda: margins.smooth(labels, "WT", "median", 3.0, sp),
        "fill between slices (ET, 1 in 5)": lambda: interpolate.fill_between_slices(outlined, 3, 0, sp),
        "grow from seeds": lambda: grow.grow_from_seeds(labels, images, seeds, sp, margin_mm=5.0),
        "masked fill 3D (FLAIR)": lambda: masks.masked_fill(labels, flair, point, 3, win, None),
        "union of two layers": lambda: logic.combine(labels, other, "union"),
        "redraw WT (3 outlined slices)": lambda: redraw.redraw(labels, outlines, "WT", 2, spacing=sp),
        "split core by enhancement (Otsu)": lambda: enhancement.split_core(labels, images[1]),
        "border by confidence (0.7)": lambda: confidence.border_by_confidence(labels, prob, 0.7),
    }


def references(labels: np.ndarray, images: np.ndarray, sp: tuple[float, float, float]) -> dict[str, Callable]:
    """Naive whole-volume ways to the same results (or full-resolution random walker)."""
    wt = labels > 0
    ball = np.ones((5, 5, 5), bool)
    seeds = strokes(labels)
    return {
        "delete component": lambda: ndimage.label(wt, structure=np.ones((3, 3, 3)))[0],
        "relabel component": lambda: ndimage.label(labels == 2, structure=np.ones((3, 3, 3)))[0],
        "margin +2 mm (WT)": lambda: ndimage.distance_transform_edt(~wt, sampling=sp) <= 2,
        "margin -2 mm (WT)": lambda: ndimage.distance_transform_edt(wt, sampling=sp) > 2,
        "closing 2 mm (WT)": lambda: ndimage.binary_closing(wt, structure=ball),
        "median 3 mm (WT)": lambda: ndimage.median_filter(wt.astype(np.uint8), size=3),
        "grow from seeds": lambda: grow.grow_from_seeds(labels, images, seeds, sp, margin_mm=5.0,
                                                        max_voxels=None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=ROOT.parent / "shared/data/brats2018/Brats18_2013_11_1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="time only the tools whose name contains this (e.g. grow)")
    args = ap.parse_args()
    case = read_case(args.case)
    labels, images, sp = case.ground_truth, case.stack(), case.spacing
    box = crop_around(labels)
    region_tools = tools(labels[box], images[(slice(None), *box)], sp)
    whole_tools = tools(labels, images, sp)
    refs = references(labels, images, sp)
    print(f"case {case.case_id}, shape {labels.shape}, region 80^3, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'tool':34s} {'region s':>9s} {'case s':>8s} {'reference s':>12s} {'ratio':>6s}")
    for name, fn in whole_tools.items():
        if args.only not in name:
            continue
        t_region = best(region_tools[name], args.repeats)
        t_case = best(fn, args.repeats)
        if name in refs:
            t_ref = best(refs[name], 1 if name == "grow from seeds" else args.repeats)
            ref = f"{t_ref:12.3f} {t_ref / t_case:6.1f}"
        else:
            ref = f"{'-':>12s} {'-':>6s}"
        print(f"{name:34s} {t_region:9.3f} {t_case:8.3f} {ref}", flush=True)
    seeds = strokes(labels)
    for mv in (grow.MAX_VOXELS, None):
        grown = grow.grow_from_seeds(np.zeros_like(labels), images, seeds, sp, margin_mm=5.0, max_voxels=mv)
        dice = {c: 2 * ((grown == c) & (labels == c)).sum() / max((grown == c).sum() + (labels == c).sum(), 1)
                for c in (1, 2, 3)}
        print(f"grow from seeds ({'full resolution' if mv is None else 'coarsened'}, "
              f"{int((seeds > 0).sum())} seed voxels on 3 slices): Dice vs ground truth "
              + ", ".join(f"class {c} {d:.3f}" for c, d in dice.items()))


if __name__ == "__main__":
    main()
