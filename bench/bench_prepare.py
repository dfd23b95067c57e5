"""Time each step of preparing the real clinical study (``brats-seg prepare``) and check the target.

Usage::

    python bench/bench_prepare.py [--study ../shared/data/dicom-study/patient1] [--skull-strip auto]

Runs :func:`napari_brats_seg.core.clinical.prepare.prepare` on the study with the roles the shared
README gives (T1 502, T1ce 1101, T2 401, FLAIR 701), prints each step's wall time, the total, and the
ratio to the issue's target (3 min on a 2-core CPU), then the same registration run once as a single
full-resolution level (the reference a plain SimpleITK recipe would use) for the ratio of our
three-level schedule against it. The CPU's model name and flags are printed with the numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROLES = {"t1": "502", "t1ce": "1101", "t2": "401", "flair": "701"}
TARGET_S = 180.0


def _cpu() -> str:
    text = Path("/proc/cpuinfo").read_text()
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(text.split())
    kinds = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(kinds)})"


def _single_level(fixed, moving) -> float:
    import SimpleITK as sitk

    from napari_brats_seg.core.clinical import register as rg

    f, m = rg._normalised(rg.to_sitk(fixed)), rg._normalised(rg.to_sitk(moving))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, 0)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 100)
    reg.SetOptimizerScalesFromPhysicalShift()
    init = sitk.Euler3DTransform()
    init.SetCenter(f.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in f.GetSize()]))
    reg.SetInitialTransform(init, inPlace=False)
    t = time.perf_counter()
    reg.Execute(f, m)
    return time.perf_counter() - t


def main() -> None:
    from napari_brats_seg.core.clinical.prepare import load_inputs, prepare

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                          / "dicom-study" / "patient1"))
    p.add_argument("--skull-strip", default="auto")
    args = p.parse_args()
    print(f"CPU: {_cpu()}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rec = prepare(args.study, Path(tmp) / "case", roles=ROLES, skull_strip=args.skull_strip)
        total = time.perf_counter() - t0
    print("| step | seconds |\n|---|---:|")
    for k, v in rec["timings_s"].items():
        print(f"| {k[:-2]} | {v:.1f} |")
    print(f"| total (with writing) | {total:.1f} |")
    print(f"skull strip: {rec['skull_strip']['method']}; brain {rec['qc']['brain_volume_ml']:.0f} mL")
    print(f"target {TARGET_S:.0f} s: total / target = {total / TARGET_S:.2f}")
    images, _ = load_inputs(args.study, ROLES)
    ref = _single_level(images["t1ce"], images["flair"])
    ours = rec["timings_s"]["register_flair_s"]
    print(f"FLAIR registration: ours {ours:.1f} s, single full-resolution level {ref:.1f} s: {ref / ours:.2f}x")


if __name__ == "__main__":
    main()
