"""``brats-seg measure`` on one real case: its time, and the diameter search against brute force.

Two timings, in the same run on the same case:

1. ``measure_file`` (read the labels, measure every ET and WT lesion, volumes), the median of
   ``--repeat`` runs: the target is under 2 s.
2. The diameter search on the largest enhancing lesion, every axial slice it touches: the project's
   method (2D pieces visited by decreasing hull diameter and skipped when they cannot win; the long
   axis from the convex hull; inside tests coarse-to-fine, longest candidate first) against brute
   force (every pair of boundary pixels for the long axis and every pair of region pixels within the
   tolerance of perpendicular, each segment's inside test done, on every slice). Both give the same
   largest product; the ratio is printed.

Usage::

    python bench/bench_measure.py                       # --case DIR --repeat 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_brats_seg.core import labels as lab  # noqa: E402
from napari_brats_seg.core.io import read_labels  # noqa: E402
from napari_brats_seg.core.measure import measure_file, measure_region  # noqa: E402
from napari_brats_seg.core.measure.chords import PERP_TOLERANCE_DEG, boundary_pixels, chords_inside  # noqa: E402
from napari_brats_seg.core.measure.rano import measured_pieces  # noqa: E402


def _longest_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray, d: np.ndarray) -> float:
    """Every segment tested (in blocks, for memory), the longest inside one kept."""
    best = 0.0
    for lo in range(0, len(p), 8192):
        ok = chords_inside(mask, p[lo:lo + 8192], q[lo:lo + 8192])
        if ok.any():
            best = max(best, float(d[lo:lo + 8192][ok].max()))
    return best


def brute_slice(region: np.ndarray, sp: np.ndarray, tol_deg: float) -> float:
    """Brute-force product (between pixel centres) of one filled 2D region."""
    b = boundary_pixels(region)
    if len(b) < 2:
        return 0.0
    i, j = np.triu_indices(len(b), 1)
    v = (b[j] - b[i]) * sp
    d = np.hypot(v[:, 0], v[:, 1])
    ok = chords_inside(region, b[i], b[j])
    k = int(np.flatnonzero(ok)[np.argmax(d[ok])])
    long, u = float(d[k]), v[k] / d[k]
    pts = np.argwhere(region)
    i, j = np.triu_indices(len(pts), 1)
    w = (pts[j] - pts[i]) * sp
    dw = np.hypot(w[:, 0], w[:, 1])
    sel = np.abs(w @ u) <= np.sin(np.radians(tol_deg)) * dw + 1e-12
    perp = _longest_inside(region, pts[i[sel]], pts[j[sel]], dw[sel])
    return long * perp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default=str(ROOT.parent / "shared/data/brats2018/Brats18_2013_11_1"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    case = Path(args.case)
    seg = next(case.glob("*_seg.nii.gz"))

    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = measure_file(seg, case=case)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)

    internal, _, geo = read_labels(seg)
    et, ncr = internal == lab.ENHANCING, internal == lab.NECROTIC
    sp = np.asarray(geo.spacing[1:])
    t0 = time.process_time()
    les = measure_region(et, geo.spacing, enclosed=ncr).lesions[0]
    t_fast = time.process_time() - t0
    cc, _ = ndimage.label(et, structure=np.ones((3, 3, 3), bool))
    lesion = cc == cc[les.slice, les.long.start[0], les.long.start[1]]
    pieces = measured_pieces(lesion, ncr)  # the regions both methods measure (not timed)
    t0 = time.process_time()
    best = 0.0
    for _, _, piece in pieces:
        best = max(best, brute_slice(piece, sp, PERP_TOLERANCE_DEG))
    t_brute = time.process_time() - t0
    fast_centre = les.long.centre_mm * les.perp.centre_mm

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"case {res.case_id}: {len(res.et.lesions)} ET lesions, {len(res.wt.lesions)} WT lesions, "
          f"SPD {res.et.spd_mm2:.1f} mm²")
    print(f"load average {os.getloadavg()[0]:.1f} (wall times grow with it; CPU times do not)")
    print("| step | wall s | CPU s |\n|---|---|---|")
    print(f"| measure_file (read + ET + WT + volumes), median of {args.repeat} | {statistics.median(times):.3f} "
          f"| {statistics.median(cpu):.3f} |")
    print(f"| all ET lesions, this method | | {t_fast:.3f} |")
    print(f"| largest ET lesion, brute force, every slice | | {t_brute:.3f} |")
    print(f"ratio brute force (one lesion) / this method (all lesions), CPU time: {t_brute / t_fast:.0f}x")
    print(f"largest product between centres: this method {fast_centre:.1f} mm², brute force {best:.1f} mm²")


if __name__ == "__main__":
    main()
