"""``brats-seg compare`` on whole real cases: its time, and the registration schedule against full resolution.

A follow-up is made from a real BraTS 2018 case (every sequence and the labels moved together by a
rigid 5 degrees about the superior axis and 4 mm; the enhancing tumour eroded by 2 mm) and written as a
case folder; then, in the same run on the same pair:

1. ``compare`` with the default schedule (images block-averaged to 2 mm for the registration), end to
   end: reading both cases, measuring both, registering, matching lesions. Target: under 60 s.
2. The same with the registration at full resolution (``registration_spacing=None``).

Printed: both times, their ratio, and how far each registration is from the applied motion.

Usage::

    python bench/bench_compare.py                       # --case DIR
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_brats_seg.core import labels as lab  # noqa: E402
from napari_brats_seg.core.clinical.register import RigidResult, resample  # noqa: E402
from napari_brats_seg.core.io import read_case  # noqa: E402
from napari_brats_seg.core.measure.compare import compare  # noqa: E402

MODS = ("t1", "t1ce", "t2", "flair", "seg")


def motion(affine: np.ndarray, shape: tuple[int, ...], deg: float = 5.0, shift: float = 4.0) -> RigidResult:
    """Rotation about the superior axis through the grid's centre, then a shift along L (LPS mm)."""
    c = (affine @ np.array([*(np.array(shape[:3]) - 1) / 2, 1.0]))[:3] * np.array([-1, -1, 1])
    a = math.radians(deg)
    r = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, c - r @ c + np.array([shift, 0, 0])
    return RigidResult(m, 0.0, 0.0, 0)


def make_follow_up(case: Path, out: Path, erode_mm: float = 2.0) -> tuple[Path, RigidResult]:
    """The moved, eroded follow-up of ``case`` written as ``out``."""
    c = read_case(case)
    labels = c.ground_truth.copy()
    et = labels == lab.ENHANCING
    labels[et & (ndimage.distance_transform_edt(et, sampling=c.spacing) <= erode_mm)] = lab.EDEMA
    out.mkdir(parents=True, exist_ok=True)
    t = None
    for m in MODS:
        img = nib.load(str(case / f"{case.name}_{m}.nii.gz"))
        t = t or motion(img.affine, img.shape)
        if m == "seg":
            img = nib.Nifti1Image(np.array([0, 1, 2, 4, 4], np.int16)[c.geometry.from_internal(labels)], img.affine)
        r = resample(img, img.affine, img.shape, t, nearest=m == "seg")
        nib.save(nib.Nifti1Image(np.asarray(r.dataobj).astype(np.int16), img.affine), str(out / f"{out.name}_{m}.nii.gz"))
    return out, t


def run(case: Path, followup: Path, applied: RigidResult, spacing: float | None) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = compare(case, followup, registration_spacing=spacing)
    dt = time.perf_counter() - t0
    f = res.followups[0]
    err = float(np.abs(f.registration.result.matrix @ applied.matrix - np.eye(4))[:3].max())
    label = f"{spacing:g} mm" if spacing else "full resolution"
    print(f"compare, registration at {label:>15}: {dt:6.1f} s  (RANO {f.category.suggestion}, SPD "
          f"{f.spd['change_vs_baseline_pct']:+.1f} %, MI {f.registration.result.metric_after:.3f}, "
          f"|M*T - I| max {err:.3f})", flush=True)
    return dt, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=ROOT.parent / "shared/data/brats2018/Brats18_TCIA02_135_1")
    args = ap.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; case {args.case.name}")
    with tempfile.TemporaryDirectory() as tmp:
        fu, applied = make_follow_up(args.case, Path(tmp) / f"{args.case.name}_followup")
        fast, _ = run(args.case, fu, applied, 2.0)
        full, _ = run(args.case, fu, applied, None)
    print(f"full resolution / 2 mm schedule: {full / fast:.2f}x; target under 60 s: "
          f"{'met' if fast < 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
