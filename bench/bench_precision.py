"""bf16 + channels-last against fp32 on the CPU for any model: time per case and label agreement.

The CPU fast path is kept for a model family only where its labels agree with fp32 at >= 0.99 Dice per
region (WT, TC, ET) on a real case. This script measures that for a real, trained model (e.g. the
CaPTk DeepMedic model) or a shipped checkpoint: ``predict`` runs once with ``precision="fp32"`` and
once with ``"bf16"``, each in its own fresh process (its own peak memory), on the same case; with
``--reference`` the labels are also scored against a reference label map (e.g. the original
implementation's prediction).

Usage::

    python bench/bench_precision.py --model ../shared/models/captk-deepmedic \\
        --case ../shared/data/brats2018/Brats18_2013_11_1 \\
        --reference ../shared/models/captk-deepmedic/reference_predictions/Brats18_2013_11_1_deepmedic.nii.gz
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(model: str, case: Path, precision: str, out: Path) -> dict:
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.models.registry import load_model

    loaded = load_model(model)
    t0 = time.perf_counter()
    c = read_case(case)
    seg = predict(c, loaded, device="cpu", precision=precision)
    seconds = time.perf_counter() - t0
    np.save(out, seg.labels)
    return {"seconds": seconds, "dtype": seg.info["dtype"], "mode": seg.info["mode"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    from bench_segresnet import cpu_name, region_dice

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="shipped name, checkpoint, DeepMedic or bundle folder")
    ap.add_argument("--case", type=Path, required=True)
    ap.add_argument("--reference", type=Path, help="a reference label map of the case (any BraTS scheme)")
    ap.add_argument("--worker", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.model, args.case, args.worker, args.out)))
        return 0

    import torch

    from napari_brats_seg.core.io import read_case, read_labels

    tmp = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    rows, labels = {}, {}
    for p in ("fp32", "bf16"):
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--case", str(args.case),
                               "--worker", p, "--out", str(tmp / f"{p}.npy")], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        rows[p] = json.loads(proc.stdout.strip().splitlines()[-1])
        labels[p] = np.load(tmp / f"{p}.npy")
    ref = None
    if args.reference:
        case = read_case(args.case)
        ref, _, _ = read_labels(args.reference, geometry=case.geometry)
    print(f"model {args.model}; case {args.case.name}")
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print()
    print("| precision | time per case (s) | peak RSS (MB) | speed-up | Dice vs fp32 WT / TC / ET |"
          + (" Dice vs reference WT / TC / ET |" if ref is not None else ""))
    print("|---|---:|---:|---:|---|" + ("---|" if ref is not None else ""))
    def fmt(d):
        return (" / ".join(f"{d[r]:.4f}" for r in ("WT", "TC", "ET")))
    for p, r in rows.items():
        line = (f"| {r['dtype']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                f"{rows['fp32']['seconds'] / r['seconds']:.2f}x | {fmt(region_dice(labels[p], labels['fp32']))} |")
        if ref is not None:
            line += f" {fmt(region_dice(labels[p], ref))} |"
        print(line)
    agree = region_dice(labels["bf16"], labels["fp32"])
    print(f"\nbf16 kept for this family (faster and >= 0.99 Dice per region): "
          f"{'yes' if min(agree.values()) >= 0.99 and rows['bf16']['seconds'] < rows['fp32']['seconds'] else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
