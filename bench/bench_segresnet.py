"""Our pipeline against MONAI's reference pipeline of the ``brats_mri_segmentation`` bundle.

Same SegResNet (the bundle's configuration, seeded random weights), same real case, same run:

- **reference**: the bundle's inference transforms (``LoadImaged`` of the four files,
  ``EnsureChannelFirstd``, ``NormalizeIntensityd(nonzero=True, channel_wise=True)``),
  ``sliding_window_inference`` with ``roi_size=(240, 240, 160)``, ``overlap=0.5``, ``sw_batch_size=1``,
  fp32; sigmoid, threshold 0.5, the bundle's label merge; then the label map written as ``.nii.gz``
  with nibabel (what the bundle's ``SaveImaged`` does).
- **ours**: ``read_case`` + ``predict`` (the model's normalisation, one whole-volume pass) +
  ``write_labels``, on the whole volume (``crop=False``, what ``segment`` runs for a bundle), per
  ``--precisions`` and, when :func:`~napari_brats_seg.core.inference.predict` takes a ``runtime``
  argument, per ``--runtime``.

Each pipeline runs in its own fresh process, so its peak resident memory (``ru_maxrss``) is its own.
The processes alternate (reference, ours, ..., ``--rounds`` times) and the table gives medians. Each
process runs its pipeline twice on the case: the **first** run carries the one-off costs (first use
of every convolution kernel, first touch of fresh memory: what one ``brats-seg segment`` of one case
costs), the **second** is what every further case of a cohort or of a napari session costs. Times are
wall-clock from file reading to the label map; writing the ``.nii.gz`` is its own column.

Ours is also broken down per stage (medians of the second runs, and of the first runs): reading
(``load_nifti``: decompression and checks; the rest of ``read_case``: conversion to float32 and the
internal orientation, the ground truth), ``prepare`` (channels, normalisation, reorientation,
padding), the network (``run_network`` without the activation), the sigmoid, restoring to the case's
grid and decoding (``to_case_grid``), the clean-ups and writing. A stage the code no longer has is
left out.

Random weights give meaningless, often degenerate labels. To measure agreement on non-trivial labels,
a per-channel bias is added to the network's last convolution (which adds it to the logits): chosen on
the reference's logits so that the TC, WT and ET channels fire on 4 %, 8 % and 2 % of the brain
voxels. The same biased network runs in every pipeline (the reference's labels are its unbiased logits
plus the bias, which is exact because the last layer is linear).

With ``--checkpoint`` a *trained* SegResNet (the bundle's configuration, trained here with
``brats-seg train --model segresnet``; no pretrained weights can be downloaded) replaces the random
weights, and no bias is added. ``--network tiny`` replaces the network by a seeded per-voxel linear
map (a 1x1x1 convolution) in every pipeline: what is left is the cost of the pipeline around the
network.

Usage::

    python bench/bench_segresnet.py [--case ../shared/data/brats2018/Brats18_2013_11_1] [--seed 0]
                                    [--rounds 3] [--precisions auto] [--runtime openvino,torch]
                                    [--checkpoint segresnet.safetensors] [--network tiny]

Run with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` to force PyTorch's AVX2 code paths.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT.parent / "shared" / "data" / "brats2018" / "Brats18_2013_11_1"
#: Fraction of brain voxels each output channel (TC, WT, ET) fires on after the bias.
TARGET_FRACTIONS = (0.04, 0.08, 0.02)
#: Our stages: (label, module, attribute) of the functions timed; nested ones are subtracted.
STAGES = (
    ("read: decompress + checks (load_nifti)", "napari_brats_seg.core.io", "load_nifti"),
    ("read: rest of read_case", "napari_brats_seg.core.io", "read_case"),
    ("prepare (normalise, reorient, pad)", "napari_brats_seg.core.inference", "prepare"),
    ("network", "napari_brats_seg.core.inference", "run_network"),
    ("sigmoid", "napari_brats_seg.core.inference", "activate"),
    ("restore + decode (to_case_grid)", "napari_brats_seg.core.inference", "to_case_grid"),
    ("clean-ups (clean_labels)", "napari_brats_seg.core.inference", "clean_labels"),
    ("write .nii.gz (write_labels)", "napari_brats_seg.core.io", "write_labels"),
)
#: Stage -> the stage timed inside it (its time is subtracted from the outer one).
NESTED = {"read: rest of read_case": "read: decompress + checks (load_nifti)", "network": "sigmoid"}


def _tiny(seed: int):
    """A seeded per-voxel linear map of the bundle's 4 inputs to 3 logits (``--network tiny``).

    A 1x1x1 ``Conv3d`` would do the same, but PyTorch's CPU kernels take seconds for it on a whole
    volume; the sum of 12 products costs a few passes over memory, so the pipeline is what is timed.
    """
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.weight = torch.nn.Parameter(torch.randn(3, 4, generator=g) * 0.5)
            self.bias = torch.nn.Parameter(torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.float()
            out = [sum(self.weight[k, c] * x[:, c] for c in range(4)) + self.bias[k] for k in range(3)]
            return torch.stack(out, dim=1)

    return Tiny().eval()


def _network(seed: int, bias: list[float] | None, checkpoint: Path | None = None, tiny: bool = False):
    """``(spec, wrapped network)``: the bundle's SegResNet, a trained one, or the tiny stand-in."""
    import torch

    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.padding import PadToMultiple
    from napari_brats_seg.core.models.unet3d import segresnet_spec

    if checkpoint is not None:
        import dataclasses

        from napari_brats_seg.core.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint)
        # inferred as the bundle does it, whatever patch size it was trained on: one 240x240x160 window
        return dataclasses.replace(loaded.spec, patch_size=(240, 240, 160)), loaded.network.eval()
    spec = segresnet_spec()
    if tiny:
        net = PadToMultiple(_tiny(seed), 1, 3).eval()
        last = net.net
    else:
        torch.manual_seed(seed)
        net = build_network(spec).eval()
        last = [m for m in net.net.conv_final.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    if bias is not None:
        with torch.no_grad():
            last.bias += torch.tensor(bias, dtype=last.bias.dtype)
    return spec, net


def _files(case: Path, channels: tuple[str, ...]) -> list[str]:
    return [str(next(case.glob(f"*_{c}.nii.gz"))) for c in channels]


def worker_reference(case: Path, seed: int, out: Path | None, checkpoint: Path | None = None, repeat: int = 2,
                     tiny: bool = False) -> dict:
    """The bundle's pipeline; saves its raw logits (file voxel order) for the bias and the labels."""
    import nibabel as nib
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd

    spec, wrapped = _network(seed, None, checkpoint, tiny)
    net = wrapped.net  # the plain MONAI SegResNet, as the bundle runs it
    pre = Compose([LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"),
                   NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)])
    times, writes = [], []
    tmp = Path(tempfile.mkdtemp(prefix="bench_ref_"))
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = pre({"image": _files(case, spec.channels)})
        with torch.inference_mode():
            logits = sliding_window_inference(data["image"].as_tensor()[None].float(), roi_size=(240, 240, 160),
                                              sw_batch_size=1, predictor=net, overlap=0.5)[0]
            # the bundle's post-processing: Activationsd(sigmoid), AsDiscreted(threshold 0.5), the label merge
            # (its Invertd undoes nothing spatial after these transforms)
            x = torch.sigmoid(logits) > 0.5
            labels = torch.where(x[[2]], 4, torch.where(x[[0]], 1, torch.where(x[[1]], 2, 0)))
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()  # SaveImaged writes with nibabel, in the input's affine
        affine = np.asarray(data["image"].affine)
        nib.save(nib.Nifti1Image(labels[0].numpy().astype(np.uint8), affine), str(tmp / "seg.nii.gz"))
        writes.append(time.perf_counter() - t0)
    del labels
    if out is not None:
        np.save(out, logits.numpy())
    return {"seconds": times[0], "warm": times[-1], "write": writes[0], "write_warm": writes[-1]}


def reference_labels(logits: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The bundle's post-processing: sigmoid > 0.5, then ET -> 4, else TC -> 1, else WT -> 2 (file order)."""
    x = (logits + bias[:, None, None, None]) > 0  # sigmoid(z) > 0.5  <=>  z > 0
    return np.where(x[2], 4, np.where(x[0], 1, np.where(x[1], 2, 0))).astype(np.uint8)


class StageTimer:
    """Wall-clock time spent in named module functions (patched in place for one worker process)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def install(self) -> list[str]:
        """Wrap every function of :data:`STAGES` that exists; returns the labels wrapped."""
        import importlib

        done = []
        for label, module, attr in STAGES:
            mod = importlib.import_module(module)
            fn = getattr(mod, attr, None)
            if callable(fn):
                setattr(mod, attr, self._wrap(label, fn))
                done.append(label)
        return done

    def _wrap(self, label: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        return timed

    def take(self) -> dict[str, float]:
        """The stage times since the last call, nested stages subtracted from their outer one."""
        out = dict(self.seconds)
        for outer, inner in NESTED.items():
            if outer in out:
                out[outer] -= out.get(inner, 0.0)
        self.seconds = defaultdict(float)
        return out


def worker_ours(case: Path, seed: int, bias: list[float] | None, precision: str, runtime: str | None,
                out: Path, checkpoint: Path | None = None, repeat: int = 2, tiny: bool = False) -> dict:
    """Our pipeline ``repeat`` times: ``read_case`` + ``predict`` + ``write_labels``, per stage."""
    timer = StageTimer()
    timer.install()
    from napari_brats_seg.core import io
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.models.spec import LoadedModel

    spec, net = _network(seed, bias, checkpoint, tiny)
    model = LoadedModel(spec, net)
    kwargs: dict[str, Any] = {"device": "cpu", "precision": precision, "crop": False}
    if runtime is not None:
        if "runtime" not in inspect.signature(predict).parameters:
            raise SystemExit(f"this predict() takes no runtime argument (asked for {runtime!r})")
        kwargs["runtime"] = runtime
    tmp = Path(tempfile.mkdtemp(prefix="bench_ours_"))
    times, writes, stages = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c = io.read_case(case)
        seg = predict(c, model, **kwargs)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        io.write_labels(seg.labels, c, tmp / "seg.nii.gz", overwrite=True)
        writes.append(time.perf_counter() - t0)
        stages.append(timer.take())
    np.save(out, seg.labels)
    return {"seconds": times[0], "warm": times[-1], "write": writes[0], "write_warm": writes[-1],
            "stages_first": stages[0], "stages": stages[-1], "dtype": seg.info["dtype"],
            "runtime": seg.info.get("runtime", runtime or "torch")}


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


def cpu_flags() -> str:
    """The SIMD flags that matter here, as ``/proc/cpuinfo`` names them, and the forced ISA if any."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        flags = set()
    keep = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    forced = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return " ".join(keep) + (f"; forced ONEDNN_MAX_CPU_ISA={forced} ATEN_CPU_CAPABILITY="
                             f"{os.environ.get('ATEN_CPU_CAPABILITY', '-')}" if forced else "")


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _stage_table(runs: list[dict]) -> list[str]:
    """Markdown rows of the per-stage medians (second runs, first runs) of one configuration."""
    labels = [s[0] for s in STAGES if any(s[0] in r["stages"] for r in runs)]
    lines = ["| stage | second run (s) | first run (s) |", "|---|---:|---:|"]
    for label in labels:
        warm = statistics.median(r["stages"].get(label, 0.0) for r in runs)
        first = statistics.median(r["stages_first"].get(label, 0.0) for r in runs)
        lines.append(f"| {label} | {warm:.3f} | {first:.3f} |")
    return lines


def _worker_main(args: argparse.Namespace) -> int:
    tiny = args.network == "tiny"
    if args.worker == "reference":
        res = worker_reference(args.case, args.seed, args.out, args.checkpoint, tiny=tiny)
    else:
        bias = [float(b) for b in args.bias.split(",")] if args.bias else None
        res = worker_ours(args.case, args.seed, bias, args.precision, args.runtime or None, args.out,
                          args.checkpoint, tiny=tiny)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    ap.add_argument("--precisions", default="auto", help="ours: comma-separated precisions (auto, fp32, bf16)")
    ap.add_argument("--runtime", default="", help="ours: comma-separated runtimes passed to predict(runtime=) "
                                                  "when it takes one (e.g. auto,torch,openvino)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained SegResNet in the project's format (brats-seg train --model segresnet); "
                         "default: the bundle's configuration with seeded random weights and biased logits")
    ap.add_argument("--network", choices=("segresnet", "tiny"), default="segresnet",
                    help="tiny: a 1x1x1 convolution everywhere, to time the pipeline around the network")
    ap.add_argument("--worker", choices=("reference", "ours"), help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--bias", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return _worker_main(args)

    import torch

    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.labels import region_masks

    case = read_case(args.case)
    geo = case.geometry
    brain = case.brain_mask()
    tmp = Path(tempfile.mkdtemp(prefix="bench_segresnet_"))
    common = ["--case", str(args.case), "--seed", str(args.seed), "--network", args.network]
    what = (f"trained weights {args.checkpoint}" if args.checkpoint else
            "a seeded per-voxel linear map (pipeline only)" if args.network == "tiny" else
            f"seeded random weights (seed {args.seed}) with biased logits")
    if args.checkpoint is not None:
        common += ["--checkpoint", str(args.checkpoint)]
    print(f"case {case.case_id} {case.shape} (z, y, x); SegResNet (brats_mri_segmentation config), {what}")
    print(f"machine: {cpu_name()}, flags {cpu_flags()}; {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.2f}")
    runtimes = [r for r in args.runtime.split(",") if r]
    if runtimes and "runtime" not in inspect.signature(predict).parameters:
        print(f"predict() takes no runtime argument: --runtime {args.runtime} ignored")
        runtimes = []
    configs = [(p, r) for p in args.precisions.split(",") for r in (runtimes or [None])]

    ref_runs: list[dict] = []
    ours_runs: dict[tuple[str, str | None], list[dict]] = {c: [] for c in configs}
    labels: dict[tuple[str, str | None], np.ndarray] = {}
    bias_arg, ref_internal, loads = "", None, []
    for rnd in range(args.rounds):
        first = rnd == 0
        ref_runs.append(_spawn(["--worker", "reference", *common,
                                *(["--out", str(tmp / "ref.npy")] if first else [])]))
        if first:
            logits = geo.to_internal(np.moveaxis(np.load(tmp / "ref.npy"), 0, -1))  # (z, y, x, 3)
            if args.checkpoint is not None:  # a trained network: its own logits, no bias
                bias = np.zeros(3, np.float32)
            else:
                bias = np.array([-np.quantile(logits[..., c][brain], 1 - f)
                                 for c, f in enumerate(TARGET_FRACTIONS)], dtype=np.float32)
            ref_lab = reference_labels(np.moveaxis(logits, -1, 0), bias)
            ref_internal = np.select([ref_lab == 4, ref_lab == 1, ref_lab == 2], [3, 1, 2], 0).astype(np.uint8)
            bias_arg = "" if args.checkpoint is not None else ",".join(f"{b:.6f}" for b in bias)
            del logits
        for prec, rt in configs:
            res = _spawn(["--worker", "ours", *common, "--precision", prec, f"--bias={bias_arg}",
                          *(["--runtime", rt] if rt else []), "--out", str(tmp / "ours.npy")])
            ours_runs[(prec, rt)].append(res)
            if first:
                labels[(prec, rt)] = np.load(tmp / "ours.npy")
        loads.append(os.getloadavg()[0])
    assert ref_internal is not None
    vols = {r: int(m.sum()) for r, m in region_masks(ref_internal).items()}
    print(f"reference label voxels: {vols}; bias {np.round(bias, 3).tolist()}")
    print(f"{args.rounds} alternating rounds, medians; load average after each round: "
          f"{', '.join(f'{x:.2f}' for x in loads)}")
    print()
    print("| pipeline | first run (s) | second run (s) | write .nii.gz (s) | peak RSS (MB) | "
          "speed-up vs reference first / second | Dice vs reference WT / TC / ET |")
    print("|---|---:|---:|---:|---:|---:|---|")
    rf, rw = _median(ref_runs, "seconds"), _median(ref_runs, "warm")
    rows = [("reference (MONAI bundle recipe, fp32)", ref_runs, None)]
    for (prec, rt), runs in ours_runs.items():
        rows.append((f"ours ({runs[0]['dtype']}, {runs[0]['runtime']}, whole volume)", runs, (prec, rt)))
    for name, runs, key in rows:
        f, w = _median(runs, "seconds"), _median(runs, "warm")
        d = region_dice(labels[key], ref_internal) if key else None
        dtxt = " / ".join(f"{d[k]:.4f}" for k in ("WT", "TC", "ET")) if d else "-"
        print(f"| {name} | {f:.2f} | {w:.2f} | {_median(runs, 'write_warm'):.3f} | "
              f"{_median(runs, 'peak_rss_mb'):.0f} | {rf / f:.2f}x / {rw / w:.2f}x | {dtxt} |")
    for runs in ours_runs.values():
        print()
        print(f"Stages of ours ({runs[0]['dtype']}, {runs[0]['runtime']}), medians:")
        print("\n".join(_stage_table(runs)))
    for key, runs in ours_runs.items():
        ratio = min(rf / _median(runs, "seconds"), rw / _median(runs, "warm"))
        agree = min(region_dice(labels[key], ref_internal).values())
        ok = agree >= 0.999 and ratio >= 2.5
        print(f"target (>= 2.5x faster at >= 0.999 Dice per region; >= 3x with native bf16), "
              f"ours ({runs[0]['dtype']}, {runs[0]['runtime']}): {'met' if ok else 'NOT met'} "
              f"(speed-up {ratio:.2f}x, lowest Dice {agree:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
