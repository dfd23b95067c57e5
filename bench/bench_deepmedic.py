"""Time per case of the PyTorch DeepMedic port against the original implementation's recorded time.

The original (DeepMedic 0.8.4 on TensorFlow 2.21, CPU) cannot run here (no TensorFlow); its time is
the one recorded in ``../shared/models/captk-deepmedic/README.md`` for this 2-core machine kind:
20 cases in 986 s with the model loaded once, i.e. **49.3 s per case** (about 40 s of it the forward
pass), peak memory 2.7 GB. That number is a recorded reference, not measured in this run.

Ours, as the reference was measured (one run over a cohort, the model loaded once, the first case's
warm-up included; by default the 12 shared BraTS 2018 cases): per case the full pipeline ``read_case`` (four NIfTI files) ->
brain mask -> CaPTk normalisation -> crop -> :meth:`DeepMedic.predict_volume` (the original's tile
grid) -> labels, timed wall-clock and as process CPU time (``time.process_time``, both threads; on a
shared machine the wall time includes waiting for the CPU). Each case runs in fp32 and in bf16
(autocast, channels-last 3D convolutions; AVX-512 BF16 on this CPU, which has no AMX); agreement with
the original's predictions (Dice per region) is printed next to the times so that a speed-up never
hides a loss of agreement.

    python3 bench/bench_deepmedic.py [--cases ID ...] [--precisions bf16 fp32] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_brats_seg.core import io
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core import preprocess as pp
from napari_brats_seg.core.models.deepmedic import load_captk_deepmedic, plan_tiles, segment_case

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "captk-deepmedic"
#: The original's recorded time per case on this machine kind (README: 20 cases in 986 s).
REFERENCE_S = 986.0 / 20
#: Like the recorded reference (a cohort in one run, model loaded once, its warm-up included): every
#: shared BraTS 2018 case, in one process.
DEFAULT_CASES = tuple(sorted(p.name for p in (SHARED / "data" / "brats2018").glob("Brats18_*") if p.is_dir()))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def original_work(model, case) -> tuple[int, float]:
    """Tiles the original runs on ``case`` (input holds brain) and its convolution FLOPs for them.

    The FLOPs of one tile (normal pathway on 45^3, both subsampled pathways, FC layers) are counted by
    running one tile through our network under ``torch.utils.flop_counter.FlopCounterMode``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    net, spec = model.network, model.spec
    images = case.stack(spec.channels)
    mask = pp.brain_mask(images)
    img = pp.to_model_axes(pp.normalize(images, spec.normalization, mask), spec.orientation)
    plan = plan_tiles(img, net.rec_field_net, net.segment_size)
    stride = net.out_size
    starts = []
    for n in plan["padded"].shape[1:]:
        axis, nxt = [], 0
        while True:
            far = min(nxt + net.segment_size, n)
            axis.append(far - net.segment_size)
            nxt += stride
            if far >= n:
                break
        starts.append(axis)
    n_tiles = sum(plan["has_brain"]((r, c, z), net.segment_size)
                  for z in starts[2] for c in starts[1] for r in starts[0])
    hr = torch.zeros((1, 4) + (net.segment_size,) * 3)
    lrs = [torch.zeros((1, 4) + (net.subsampled_input_size(f),) * 3) for f in net.factors]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.forward_segments(hr, lrs)
    return n_tiles, float(counter.get_total_flops()) * n_tiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES))
    parser.add_argument("--precisions", nargs="*", default=["bf16", "fp32"], choices=("bf16", "fp32"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-only", action="store_true",
                        help="only count the convolution FLOPs of the original's tiling and of ours")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model = load_captk_deepmedic(MODEL)
    load_s = time.perf_counter() - t0
    print(f"machine: {_cpu_name()}, {os.cpu_count()} CPUs visible, torch {torch.__version__}, "
          f"{args.threads} threads; load average at start {os.getloadavg()[0]:.1f}")
    print(f"model loaded once in {load_s:.2f} s (TensorFlow checkpoint read without TensorFlow)")
    print(f"reference: the original DeepMedic 0.8.4 on TF 2.21, {REFERENCE_S:.1f} s/case RECORDED in "
          f"{MODEL.name}/README.md on this machine kind (986 s for 20 cases); it cannot run here.")
    print()
    if args.work_only:
        from torch.utils.flop_counter import FlopCounterMode

        print("| case | original: tiles | original: conv GFLOP | ours: conv GFLOP | work ratio |")
        print("|---|---|---|---|---|")
        for case_id in args.cases:
            case = io.read_case(SHARED / "data" / "brats2018" / case_id)
            n_tiles, orig = original_work(model, case)
            with FlopCounterMode(display=False) as counter:
                segment_case(case, model, precision="bf16")
            ours = float(counter.get_total_flops())
            print(f"| {case_id} | {n_tiles} | {orig / 1e9:.0f} | {ours / 1e9:.0f} | {orig / ours:.2f}x |", flush=True)
        return 0
    print("| case | precision | wall s | CPU s | speed-up vs 49.3 s (wall) | agreement WT | TC | ET |")
    print("|---|---|---|---|---|---|---|---|")
    rows: dict[str, list[float]] = {p: [] for p in args.precisions}
    worst = 1.0
    between: list[list[float]] = []
    for case_id in args.cases:
        ref_path = MODEL / "reference_predictions" / f"{case_id}_deepmedic.nii.gz"
        per_prec: dict[str, dict[str, np.ndarray]] = {}
        for prec in args.precisions:
            w0, c0 = time.perf_counter(), time.process_time()
            case = io.read_case(SHARED / "data" / "brats2018" / case_id)
            labels = segment_case(case, model, precision=prec)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            ref, _, _ = io.read_labels(ref_path, scheme="brats2021", geometry=case.geometry)
            ours, theirs = lab.region_masks(labels), lab.region_masks(ref)
            agree = [_dice(ours[r], theirs[r]) for r in ("WT", "TC", "ET")]
            worst = min(worst, *agree)
            rows[prec].append(wall)
            per_prec[prec] = ours
            print(f"| {case_id} | {prec} | {wall:.1f} | {cpu:.1f} | {REFERENCE_S / wall:.2f}x | "
                  + " | ".join(f"{v:.4f}" for v in agree) + " |", flush=True)
        if "bf16" in per_prec and "fp32" in per_prec:
            between.append([_dice(per_prec["bf16"][r], per_prec["fp32"][r]) for r in ("WT", "TC", "ET")])
    print()
    if between:
        low = np.min(between, axis=0)
        print(f"bf16 vs fp32 labels, lowest Dice over the cases: WT {low[0]:.4f}, TC {low[1]:.4f}, "
              f"ET {low[2]:.4f}")
    for prec, walls in rows.items():
        if walls:
            mean = float(np.mean(walls))
            print(f"{prec}: mean {mean:.1f} s/case wall -> {REFERENCE_S / mean:.2f}x the original's recorded "
                  f"{REFERENCE_S:.1f} s/case (target >= 5x)")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak resident memory of this process: {peak_gb:.2f} GB (original: 2.7 GB recorded)")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (above {args.threads}: the machine was shared "
          "and wall times include waiting for the CPU)")
    print(f"lowest agreement with the original: {worst:.4f} (>= 0.97 required)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
