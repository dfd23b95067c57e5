"""The runtimes side by side: torch eager (fp32, fp32 channels-last, bf16), ONNX Runtime and OpenVINO.

For each of the project's 3D networks, on real cases, in the SAME run:

- ``unet3d-default``: the shipped, trained 3D U-Net (2 mm, 48^3 sliding windows, batched);
- ``cascade-default``: the shipped, trained Havaei-style 2D cascade (2 mm, axial slice batches; the
  channels-last variants are 3D-only and not run for it);
- ``segresnet``: a SegResNet in the ``brats_mri_segmentation`` bundle configuration, seeded random
  weights with a per-channel bias on its last convolution chosen (on the first case's torch fp32
  logits) so that the TC, WT and ET channels fire on 4 %, 8 % and 2 % of the brain voxels, as
  ``bench/bench_segresnet.py`` does, so that agreement is measured on non-trivial labels;

every variant runs ``predict`` on the case in its own fresh process (its peak RSS is its own; the time
is that of a CLI call on one case: the export cache is filled beforehand, the runtime's session or
compilation is included), the variants alternating within each repeat. The first ``--timed-cases``
cases run ``--repeats`` times (the table gives their medians), the others once: on a shared 2-core
machine a full grid does not fit in a sitting. The labels of each variant are compared with torch
eager fp32's on every case (Dice per region, the minimum over cases).

Usage::

    python bench/bench_runtimes.py [--cases C1 C2 C3] [--repeats 3] [--timed-cases 1] [--isa native|avx2]

``--isa avx2`` runs every process with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` (oneDNN
inside torch and inside OpenVINO, and ATen's own kernels, kept to AVX2) and ``OV_CPU_MAX_ISA=AVX2``
(OpenVINO's own kernels, where its build honours it); ONNX Runtime's MLAS kernels have no such switch
and keep the CPU's widest vectors. It prints the CPU flags, the load average and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brats2018"
DEFAULT_CASES = ("Brats18_2013_11_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA02_135_1")
MODELS = ("unet3d-default", "cascade-default", "segresnet")
#: The shipped models that run in 2D (no channels-last-3d variants).
TWO_D = ("cascade-default",)
#: name -> (runtime, precision, channels_last, needs native bf16)
VARIANTS = {
    "torch fp32": ("torch", "fp32", False, False),
    "torch fp32 channels-last": ("torch", "fp32", True, False),
    "torch bf16 channels-last": ("torch", "bf16", True, True),
    "onnxruntime fp32": ("onnxruntime", "fp32", False, False),
    "openvino f32": ("openvino", "fp32", False, False),
    "openvino bf16": ("openvino", "bf16", False, True),
}
REFERENCE = "torch fp32"
TARGET_FRACTIONS = (0.04, 0.08, 0.02)  # TC, WT, ET channels of the SegResNet
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OV_CPU_MAX_ISA": "AVX2"}


def _model(name: str, bias: list[float] | None):
    import torch

    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.registry import load_model
    from napari_brats_seg.core.models.spec import LoadedModel
    from napari_brats_seg.core.models.unet3d import segresnet_spec

    if name != "segresnet":
        return load_model(name, device="cpu")
    spec = segresnet_spec()
    torch.manual_seed(0)
    net = build_network(spec).eval()
    if bias is not None:
        last = [m for m in net.net.conv_final.modules() if isinstance(m, torch.nn.Conv3d)][-1]
        with torch.no_grad():
            last.bias += torch.tensor(bias, dtype=last.bias.dtype)
    return LoadedModel(spec, net, "memory")


def worker_bias(case: Path) -> dict:
    """The SegResNet bias: per channel, minus the logit quantile that leaves the target fraction above 0."""
    import torch

    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.placement import prepare

    model = _model("segresnet", None)
    x, _ = prepare(read_case(case), model.spec, crop=True, self_tiling=False)
    with torch.inference_mode():
        z = model.network(torch.from_numpy(x)[None])[0].numpy()
    brain = np.any(x != 0, axis=0)
    return {"bias": [float(-np.quantile(z[c][brain], 1 - f)) for c, f in enumerate(TARGET_FRACTIONS)]}


def worker_run(model_name: str, variant: str, case: Path, bias: list[float] | None, out: Path | None) -> dict:
    """One ``predict`` of ``case`` in this fresh process: seconds, peak RSS, the runtime that ran."""
    from napari_brats_seg.core import inference
    from napari_brats_seg.core.device import Precision
    from napari_brats_seg.core.io import read_case

    runtime, precision, channels_last, _ = VARIANTS[variant]
    if channels_last and precision == "fp32":  # the one combination predict() does not offer by name
        inference.choose_precision = lambda *a, **k: Precision("fp32", channels_last=True)
    model = _model(model_name, bias)
    c = read_case(case)
    t0 = time.perf_counter()
    seg = inference.predict(c, model, device="cpu", precision=precision, runtime=runtime)
    seconds = time.perf_counter() - t0
    if out is not None:
        np.save(out, seg.labels)
    return {"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "runtime": seg.info["runtime"], "dtype": seg.info["dtype"], "mode": seg.info["mode"],
            "windows": seg.info["windows"]}


def worker_prime(model_name: str, variant: str, bias: list[float] | None) -> dict:
    """Fill the export cache for ``variant`` (not timed)."""
    from napari_brats_seg.core.device import Precision
    from napari_brats_seg.core.models.registry import weights_id
    from napari_brats_seg.core.runtimes import select

    runtime, precision, _, _ = VARIANTS[variant]
    model = _model(model_name, bias)
    t0 = time.perf_counter()
    select(runtime, model.spec, model.network, precision=Precision("bf16" if precision == "bf16" else "fp32"),
           weights_id=weights_id(model))  # the key predict() uses
    return {"seconds": time.perf_counter() - t0}


def _child(env: dict[str, str], *args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def dice(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Dice of two internal label maps per region (WT: 1-3, TC: 1 and 3, ET: 3); 1.0 when both are empty."""
    out = {}
    for region, classes in (("WT", (1, 2, 3)), ("TC", (1, 3)), ("ET", (3,))):
        x, y = np.isin(a, classes), np.isin(b, classes)
        s = int(x.sum()) + int(y.sum())
        out[region] = 1.0 if s == 0 else 2 * int((x & y).sum()) / s
    return out


def _uptime() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def model_variants(model: str, variants: list[str]) -> list[str]:
    """The variants that apply to ``model`` (a 2D model has no channels-last-3d variants)."""
    return [v for v in variants if not (model in TWO_D and VARIANTS[v][2])]


def _table(results: dict, cases: list[str], variants: list[str], models: list[str], tmp: Path) -> str:
    lines = [("| model | runtime | seconds per case (median of the repeats; one run: *) | vs torch eager fp32 "
              "(geometric mean over cases) | peak RSS (MB) | min Dice vs torch fp32 WT / TC / ET |"),
             "|---|---|---|---:|---:|---|"]
    for m in models:
        ref = {c: statistics.median(r["seconds"] for r in results[m][REFERENCE][c]) for c in cases}
        for v in model_variants(m, variants):
            med = {c: statistics.median(r["seconds"] for r in results[m][v][c]) for c in cases}
            ratio = math.exp(statistics.mean(math.log(ref[c] / med[c]) for c in cases))
            rss = max(r["rss_mb"] for c in cases for r in results[m][v][c])
            ref_labels = {c: np.load(tmp / f"{m}-{REFERENCE}-{c}.npy".replace(" ", "_")) for c in cases}
            d = [dice(np.load(tmp / f"{m}-{v}-{c}.npy".replace(" ", "_")), ref_labels[c]) for c in cases]
            mins = " / ".join(f"{min(x[r] for x in d):.4f}" for r in ("WT", "TC", "ET"))
            ran = results[m][v][cases[0]][0]["runtime"]
            secs = " / ".join(f"{med[c]:.1f}{'' if len(results[m][v][c]) > 1 else '*'}" for c in cases)
            lines.append(f"| {m} | {v} ({ran}) | {secs} | {ratio:.2f}x | "
                         f"{rss:.0f} | {mins} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timed-cases", type=int, default=1, help="how many of the cases run --repeats times")
    p.add_argument("--isa", default="native", choices=("native", "avx2"))
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if args.isa == "avx2":
        env.update(AVX2_ENV)
    tmp = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    env.setdefault("BRATS_SEG_CACHE_DIR", str(tmp / "cache"))
    cpu = json.loads(subprocess.run(
        [sys.executable, "-c", ("import json; from napari_brats_seg.core.runtimes import cpu_summary, "
         "available_runtimes as a; print(json.dumps({**cpu_summary(), 'runtimes': list(a())}))")],
        capture_output=True, text=True, env=env, check=True).stdout)
    native_bf16 = cpu["kind"] in ("avx512_bf16", "amx")
    variants = [v for v, (rt, _, _, bf16) in VARIANTS.items() if rt in cpu["runtimes"] and (native_bf16 or not bf16)]
    cases = [str(DATA / c) if not Path(c).is_dir() else c for c in args.cases]
    names = [Path(c).name for c in cases]
    print(f"# bench_runtimes: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU {cpu}, "
          f"isa {args.isa}, load average {_uptime()}", flush=True)
    bias = None
    if "segresnet" in args.models:
        bias = _child(env, "bias", cases[0])["bias"]
        print(f"segresnet bias (TC, WT, ET): {[round(b, 3) for b in bias]}", flush=True)
    bias_arg = json.dumps(bias)
    for m in args.models:  # fill the export cache (not timed)
        for v in model_variants(m, variants):
            if VARIANTS[v][0] != "torch":
                print(f"export {m} {v}: {_child(env, 'prime', m, v, bias_arg)['seconds']:.1f} s", flush=True)
    results: dict = {m: {v: {c: [] for c in names} for v in model_variants(m, variants)} for m in args.models}
    for rep in range(args.repeats):
        for k, (case, name) in enumerate(zip(cases, names)):
            if rep > 0 and k >= args.timed_cases:
                continue
            for m in args.models:
                for v in model_variants(m, variants):
                    out = str(tmp / f"{m}-{v}-{name}.npy".replace(" ", "_")) if rep == 0 else ""
                    r = _child(env, "run", m, v, case, bias_arg, out)
                    results[m][v][name].append(r)
                    print(f"rep {rep + 1} {name} {m} {v}: {r['seconds']:.1f} s, {r['rss_mb']:.0f} MB, "
                          f"{r['runtime']}, {r['mode']} ({r['windows']} windows or slice batches), load {_uptime()}", flush=True)
    print(f"\nload average at the end {_uptime()}; CPU flags {cpu}\n")
    print(_table(results, names, variants, args.models, tmp))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "isa": args.isa, "results": results}, indent=1))
    return 0


def _worker(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "bias":
        print(json.dumps(worker_bias(Path(argv[1]))))
        return
    if kind == "prime":
        print(json.dumps(worker_prime(argv[1], argv[2], json.loads(argv[3]))))
        return
    _, model, variant, case, bias, out = argv
    print(json.dumps(worker_run(model, variant, Path(case), json.loads(bias), Path(out) if out else None)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        sys.exit(main())
