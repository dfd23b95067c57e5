"""Our pipeline against MONAI's reference pipeline of the ``brats_mri_segmentation`` bundle.

Same SegResNet (the bundle's configuration, seeded random weights), same real case, same run:

- **reference**: the bundle's inference transforms (``LoadImaged`` of the four files,
  ``EnsureChannelFirstd``, ``NormalizeIntensityd(nonzero=True, channel_wise=True)``),
  ``sliding_window_inference`` with ``roi_size=(240, 240, 160)``, ``overlap=0.5``, ``sw_batch_size=1``,
  fp32; sigmoid, threshold 0.5, the bundle's label merge.
- **ours**: ``read_case`` + ``predict`` (the model's normalisation, one whole-volume pass), on the
  whole volume (``crop=False``, what a bundle runs by default) and on the brain's bounding box
  (``crop=True``), each in fp32 and in bf16 autocast + channels-last 3D.

Each pipeline runs in its own fresh process, so its peak resident memory (``ru_maxrss``) is its own;
the time is wall-clock from file reading to the label map (writing excluded; the reference's includes
the bundle's post-processing: sigmoid, threshold 0.5, label merge). Each process runs its pipeline twice
on the case: the **first** run carries the one-off costs (first use of every convolution kernel, first
touch of fresh memory), the **second** is what every further case of a cohort or of a napari session
costs.

Random weights give meaningless, often degenerate labels. To measure agreement on non-trivial labels,
a per-channel bias is added to the network's last convolution (which adds it to the logits): chosen on
the reference's logits so that the TC, WT and ET channels fire on 4 %, 8 % and 2 % of the brain
voxels. The same biased network runs in every pipeline (the reference's labels are its unbiased logits
plus the bias, which is exact because the last layer is linear).

With ``--checkpoint`` a *trained* SegResNet (the bundle's configuration, trained here with
``brats-seg train --model segresnet``; no pretrained weights can be downloaded) replaces the random
weights, and no bias is added: the agreement then is that of a network whose outputs mean something.

Usage::

    python bench/bench_segresnet.py [--case ../shared/data/brats2018/Brats18_2013_11_1] [--seed 0]
                                    [--checkpoint segresnet.safetensors]

It prints a table (time, peak memory, Dice agreement per region against the reference and between our
bf16 and fp32 runs) and the speed-up ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT.parent / "shared" / "data" / "brats2018" / "Brats18_2013_11_1"
#: Fraction of brain voxels each output channel (TC, WT, ET) fires on after the bias.
TARGET_FRACTIONS = (0.04, 0.08, 0.02)


def _network(seed: int, bias: list[float] | None, checkpoint: Path | None = None):
    import torch

    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.unet3d import segresnet_spec

    if checkpoint is not None:
        import dataclasses

        from napari_brats_seg.core.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint)
        # inferred as the bundle does it, whatever patch size it was trained on: one 240x240x160 window
        return dataclasses.replace(loaded.spec, patch_size=(240, 240, 160)), loaded.network.eval()
    spec = segresnet_spec()
    torch.manual_seed(seed)
    net = build_network(spec).eval()
    if bias is not None:
        last = [m for m in net.net.conv_final.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        with torch.no_grad():
            last.bias += torch.tensor(bias, dtype=last.bias.dtype)
    return spec, net


def _files(case: Path, channels: tuple[str, ...]) -> list[str]:
    return [str(next(case.glob(f"*_{c}.nii.gz"))) for c in channels]


def worker_reference(case: Path, seed: int, out: Path, checkpoint: Path | None = None, repeat: int = 2) -> dict:
    """The bundle's pipeline; saves its raw logits (file voxel order) for the bias and the labels."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd

    spec, wrapped = _network(seed, None, checkpoint)
    net = wrapped.net  # the plain MONAI SegResNet, as the bundle runs it
    pre = Compose([LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"),
                   NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = pre({"image": _files(case, spec.channels)})
        with torch.inference_mode():
            logits = sliding_window_inference(data["image"].as_tensor()[None].float(), roi_size=(240, 240, 160),
                                              sw_batch_size=1, predictor=net, overlap=0.5)[0]
            # the bundle's post-processing: Activationsd(sigmoid), AsDiscreted(threshold 0.5), the label merge
            # (its Invertd undoes nothing spatial after these transforms; SaveImaged is left out as our
            # writing is)
            x = torch.sigmoid(logits) > 0.5
            labels = torch.where(x[[2]], 4, torch.where(x[[0]], 1, torch.where(x[[1]], 2, 0)))
        times.append(time.perf_counter() - t0)
    del labels
    np.save(out, logits.numpy())
    return {"seconds": times[0], "warm": times[-1]}


def reference_labels(logits: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The bundle's post-processing: sigmoid > 0.5, then ET -> 4, else TC -> 1, else WT -> 2 (file order)."""
    x = (logits + bias[:, None, None, None]) > 0  # sigmoid(z) > 0.5  <=>  z > 0
    return np.where(x[2], 4, np.where(x[0], 1, np.where(x[1], 2, 0))).astype(np.uint8)


def worker_ours(case: Path, seed: int, bias: list[float] | None, precision: str, crop: bool, out: Path,
                checkpoint: Path | None = None, repeat: int = 2) -> dict:
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.models.spec import LoadedModel

    spec, net = _network(seed, bias, checkpoint)
    model = LoadedModel(spec, net)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c = read_case(case)
        seg = predict(c, model, device="cpu", precision=precision, crop=crop)
        times.append(time.perf_counter() - t0)
    np.save(out, seg.labels)
    return {"seconds": times[0], "warm": times[-1], "dtype": seg.info["dtype"], "mode": seg.info["mode"],
            "crop": seg.info["crop"]}


def _spawn(args: list[str], env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"worker {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def region_dice(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from napari_brats_seg.core.labels import region_masks

    mx, my = region_masks(x), region_masks(y)
    return {r: dice(mx[r], my[r]) for r in ("WT", "TC", "ET")}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained SegResNet in the project's format (brats-seg train --model segresnet); "
                         "default: the bundle's configuration with seeded random weights and biased logits")
    ap.add_argument("--worker", choices=("reference", "ours"), help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--bias", default="", help=argparse.SUPPRESS)
    ap.add_argument("--no-crop", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--keep-freed-memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        if args.keep_freed_memory:  # the allocator setting our pipeline applies (core.memory)
            from napari_brats_seg.core.memory import keep_freed_memory

            keep_freed_memory()
        if args.worker == "reference":
            res = worker_reference(args.case, args.seed, args.out, args.checkpoint)
        else:
            bias = [float(b) for b in args.bias.split(",")] if args.bias else None
            res = worker_ours(args.case, args.seed, bias, args.precision, not args.no_crop, args.out,
                              args.checkpoint)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return 0

    import torch

    from napari_brats_seg.core.geometry import Geometry
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.labels import region_masks

    case = read_case(args.case)
    geo: Geometry = case.geometry
    brain = case.brain_mask()
    tmp = Path(tempfile.mkdtemp(prefix="bench_segresnet_"))
    common = ["--case", str(args.case), "--seed", str(args.seed)]
    if args.checkpoint is not None:
        common += ["--checkpoint", str(args.checkpoint)]
        print(f"case {case.case_id} {case.shape} (z, y, x); SegResNet (brats_mri_segmentation config), trained "
              f"weights {args.checkpoint}")
    else:
        print(f"case {case.case_id} {case.shape} (z, y, x); SegResNet (brats_mri_segmentation config), "
              f"seeded random weights (seed {args.seed}) with biased logits")
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")

    ref = _spawn(["--worker", "reference", *common, "--out", str(tmp / "ref.npy")])
    logits = geo.to_internal(np.moveaxis(np.load(tmp / "ref.npy"), 0, -1))  # (z, y, x, 3)
    if args.checkpoint is not None:  # a trained network: its own logits, no bias
        bias = np.zeros(3, np.float32)
    else:
        bias = np.array([-np.quantile(logits[..., c][brain], 1 - f) for c, f in enumerate(TARGET_FRACTIONS)],
                        dtype=np.float32)
    ref_lab = reference_labels(np.moveaxis(logits, -1, 0), bias)
    ref_internal = np.select([ref_lab == 4, ref_lab == 1, ref_lab == 2], [3, 1, 2], 0).astype(np.uint8)
    bias_arg = "" if args.checkpoint is not None else ",".join(f"{b:.6f}" for b in bias)

    ref_tuned = _spawn(["--worker", "reference", *common, "--keep-freed-memory", "--out", str(tmp / "ref2.npy")])
    rows = {"reference (MONAI bundle, fp32)": ref,
            "reference + our allocator setting (core.memory)": ref_tuned}
    labels = {}
    untuned = {"BRATS_SEG_KEEP_FREED_MEMORY": "0"}
    for crop, precision, env in ((False, "fp32", None), (False, "bf16", None), (False, "bf16", untuned),
                                 (True, "fp32", None), (True, "bf16", None)):
        key = (crop, precision) if env is None else (crop, precision, "untuned")
        res = _spawn(["--worker", "ours", *common, "--precision", precision, f"--bias={bias_arg}",
                      *([] if crop else ["--no-crop"]), "--out", str(tmp / "ours.npy")], env)
        labels[key] = np.load(tmp / "ours.npy")
        where = "brain crop" if crop else "whole volume"
        extra = ", glibc's default allocator" if env else ""
        rows[f"ours ({res['dtype']}, {where}{extra})"] = res
        res["key"] = key
    vols = {r: int(m.sum()) for r, m in region_masks(ref_internal).items()}
    print(f"reference label voxels: {vols}; bias {np.round(bias, 3).tolist()}")
    print()
    print("| pipeline | first run (s) | second run (s) | peak RSS (MB) | speed-up vs reference first / second | "
          "vs reference + allocator setting first / second | Dice vs reference WT / TC / ET | "
          "Dice vs our fp32 of the same crop WT / TC / ET |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, r in rows.items():
        key = r.get("key")
        d = region_dice(labels[key], ref_internal) if key else None
        p = region_dice(labels[key], labels[(key[0], "fp32")]) if key and key[1] != "fp32" else None
        def fmt(x):
            return (" / ".join(f"{x[k]:.4f}" for k in ("WT", "TC", "ET")) if x else "-")
        print(f"| {name} | {r['seconds']:.1f} | {r['warm']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{ref['seconds'] / r['seconds']:.2f}x / {ref['warm'] / r['warm']:.2f}x | "
              f"{ref_tuned['seconds'] / r['seconds']:.2f}x / {ref_tuned['warm'] / r['warm']:.2f}x | "
              f"{fmt(d)} | {fmt(p)} |")
    for crop, what in ((False, "whole volume + bf16 (what `segment` runs for a bundle)"),
                       (True, "brain crop + bf16")):
        fast = rows[[n for n, r in rows.items() if r.get("key") == (crop, "bf16")][0]]
        agree = min(region_dice(labels[(crop, "bf16")], ref_internal).values())
        for against, base in (("the reference as the bundle runs it", ref),
                              ("the reference with the same allocator setting", ref_tuned)):
            ratio = min(base["seconds"] / fast["seconds"], base["warm"] / fast["warm"])
            ok = agree >= 0.99 and ratio >= 3
            print(f"target (>= 3x faster at >= 0.99 Dice per region), {what}, against {against}: "
                  f"{'met' if ok else 'NOT met'} (speed-up {ratio:.2f}x, lowest Dice {agree:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
