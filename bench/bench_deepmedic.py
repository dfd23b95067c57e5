"""The PyTorch DeepMedic port against the ORIGINAL DeepMedic 0.8.4, both run here, in the same run.

On each case (default: 3 of ``../shared/data/brats2018``) and each repeat the two alternate: the original
(``../shared/reference/deepmedic/run.sh``: DeepMedic 0.8.4 on TensorFlow, CPU), then the port in fp32,
then the port in the CPU's default precision (bf16 only on a CPU with native bf16; on others the default
is fp32 and that row is not repeated), each on every runtime of ``--runtimes`` (default: torch, and
openvino where installed: the port's three graphs on OpenVINO, see ``core/models/deepmedic/runtime.py``),
then the original again on the next case, ... Each is a fresh
process, timed as a whole (wall clock of the command: interpreter start, imports, model loading, reading,
segmenting, writing the label file), with its own peak resident memory (``os.wait4``). The network part:
the original's own ``[Forward Pass:]`` time (the sum of its ``Session.run`` calls), the port's
``DeepMedic.predict_volume`` (tile plan, padding, pathways, FC layers). The port segments with
:func:`segment_case` (the original's pipeline) and its labels are compared with the original's output
file of the same run: voxels labelled differently and Dice per region (WT, TC, ET).

Printed: a Markdown table (one row per run), the medians per kind of run, the ratio original / port of
the medians (total and network), the CPU's model and flags, the ISA limits in force and the load average
before each run (``os.getloadavg``). ``--avx2`` forces the AVX2-only code paths
(``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``) for the port and, unless ``--avx2-port-only``,
for the original too (TensorFlow's oneDNN kernels honour ``ONEDNN_MAX_CPU_ISA``; its own Eigen kernels
keep the instructions the wheel was built for): on a CPU with AVX-512 the closest to an AVX2-only CPU.

    python3 bench/bench_deepmedic.py [--cases ID ...] [--repeats 1] [--avx2] [--avx2-port-only]
                                     [--runtimes torch openvino]

The row ``port openvino`` is ``--runtime openvino``; what ``auto`` picks on this CPU is printed above the
table. Its first run exports the graphs into the export cache (``$BRATS_SEG_CACHE_DIR``): the bench
warms it once before timing, so the rows time what every later run costs.

The original's first run creates its virtual environment (``run.sh``; minutes, once): run
``../shared/reference/deepmedic/run.sh CASE OUT`` once before timing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "captk-deepmedic"
RUN_SH = SHARED / "reference" / "deepmedic" / "run.sh"
DATA = SHARED / "data" / "brats2018"
DEFAULT_CASES = ("Brats18_2013_11_1", "Brats18_CBICA_ABM_1", "Brats18_TCIA10_628_1")
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_description() -> str:
    """The CPU's model name, core count and which of :data:`FLAGS` it reports (Linux)."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags]
    lack = [f for f in FLAGS if f not in flags]
    return f"{name}, {os.cpu_count()} CPUs; flags: {' '.join(have) or '-'}; lacks: {' '.join(lack) or '-'}"


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run ``cmd``; its wall seconds, CPU seconds and peak RSS (GB; of it and its children) and stdout."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2, text


def run_original(case_dir: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """The original DeepMedic on one case: wall s, network s (its forward passes), peak RSS."""
    wall, cpu, rss, text = _timed(["bash", str(RUN_SH), str(case_dir), str(out)], env)
    last = [ln for ln in text.splitlines() if ln.startswith("seconds total")][-1].split()
    return {"total": wall, "cpu": cpu, "network": float(last[4]), "rss": rss}


def run_port(case_dir: Path, out: Path, precision: str, env: dict[str, str], runtime: str = "torch"
             ) -> dict[str, Any]:
    """The port on one case in a fresh process (:func:`_worker`): wall s, network s, peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(case_dir), str(out), precision, runtime]
    wall, cpu, rss, text = _timed(cmd, env)
    info = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    return {"total": wall, "cpu": cpu, "network": info["network"], "rss": rss, "precision": info["precision"],
            "runtime": info["runtime"]}


def _worker(case_dir: str, out: str, precision: str, runtime: str = "torch") -> int:
    """Child process: segment one case with the port as the original's pipeline does, write the labels."""
    import torch

    from napari_brats_seg.core import io
    from napari_brats_seg.core.device import choose_precision
    from napari_brats_seg.core.models.deepmedic import load_captk_deepmedic, segment_case

    if precision == "auto":
        precision = choose_precision(torch.device("cpu"), "deepmedic", 3, "auto").dtype
    model = load_captk_deepmedic(MODEL)
    net = model.network
    spent = [0.0]
    predict = net.predict_volume

    @functools.wraps(predict)  # keeps the signature: predict() passes origin/image_shape to it
    def timed_predict(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return predict(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    net.predict_volume = timed_predict  # type: ignore[method-assign]
    case = io.read_case(case_dir)
    labels = segment_case(case, model, precision=precision, runtime=runtime)
    io.write_labels(labels, case, out, overwrite=True)
    print(json.dumps({"network": spent[0], "precision": precision, "runtime": net.runtime}))
    return 0


def agreement(ours: Path, theirs: Path) -> tuple[int, list[float]]:
    """Voxels labelled differently and Dice of WT (> 0), TC (1, 4), ET (4) between two BraTS label files."""
    import nibabel as nib

    a = np.asanyarray(nib.load(ours).dataobj).astype(np.int16)
    b = np.asanyarray(nib.load(theirs).dataobj).astype(np.int16)
    if a.shape != b.shape:
        raise RuntimeError(f"{ours} has shape {a.shape}, {theirs} {b.shape}")
    dice = []
    for region in ((1, 2, 4), (1, 4), (4,)):
        ra, rb = np.isin(a, region), np.isin(b, region)
        s = int(ra.sum()) + int(rb.sum())
        dice.append(1.0 if s == 0 else 2.0 * int((ra & rb).sum()) / s)
    return int((a != b).sum()), dice


def _installed_runtimes(env: dict[str, str]) -> list[str]:
    """The port's runtimes installed for ``env`` (torch, and openvino when it imports)."""
    code = ("import json; from napari_brats_seg.core.runtimes.cpu import available_runtimes; "
            "print(json.dumps([r for r in available_runtimes() if r in ('torch', 'openvino')]))")
    return json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout)


def _auto_runtime(env: dict[str, str]) -> str:
    """What ``--runtime auto`` runs DeepMedic on for ``env``."""
    code = ("from napari_brats_seg.core.models.deepmedic.runtime import choose_runtime; "
            "print(choose_runtime('auto'))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def _warm(runtime: str, precision: str, env: dict[str, str]) -> None:
    """Export the port's graphs for ``runtime`` into the export cache (untimed)."""
    code = ("import sys; from napari_brats_seg.core.models.deepmedic import load_captk_deepmedic; "
            "net = load_captk_deepmedic(sys.argv[1]).network; print(net.use_runtime(sys.argv[2], 'cpu', sys.argv[3]))")
    subprocess.run([sys.executable, "-c", code, str(MODEL), runtime, precision], env=env, capture_output=True,
                   text=True, check=True)


def _row(case_id: str, what: str, r: dict[str, Any], orig: dict[str, Any] | None, load: float,
         agree: tuple[int, list[float]] | None, vs_torch: int | None = None) -> str:
    ratio = f"{orig['total'] / r['total']:.2f}x" if orig else "-"
    cpu_ratio = f"{orig['cpu'] / r['cpu']:.2f}x" if orig else "-"
    net_ratio = f"{orig['network'] / r['network']:.2f}x" if orig else "-"
    diff = "-" if agree is None else f"{agree[0]:,}"
    dice = ["-"] * 3 if agree is None else [f"{d:.4f}" for d in agree[1]]
    return (f"| {case_id} | {what} | {r['total']:.1f} | {r['network']:.1f} | {r['cpu']:.1f} | {ratio} | {net_ratio} "
            f"| {cpu_ratio} | "
            f"{r['rss']:.2f} | {diff} | {' | '.join(dice)} | {'-' if vs_torch is None else f'{vs_torch:,}'} "
            f"| {load:.2f} |")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(*argv[1:5])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES))
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the cases (alternating each time)")
    parser.add_argument("--avx2", action="store_true", help="force the AVX2-only code paths (see the doc)")
    parser.add_argument("--avx2-port-only", action="store_true", help="with --avx2: for the port only")
    parser.add_argument("--workdir", type=Path, default=None, help="where the label files go (default: temp)")
    parser.add_argument("--runtimes", nargs="*", default=None,
                        help="the port's runtimes (default: torch, and openvino where installed)")
    args = parser.parse_args(argv)

    base = dict(os.environ)
    base["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + base.get("PYTHONPATH", "")
    port_env, orig_env = dict(base), dict(base)
    if args.avx2:
        port_env.update(AVX2_ENV)
        if not args.avx2_port_only:
            orig_env.update(AVX2_ENV)
    default = json.loads(subprocess.run(
        [sys.executable, "-c", ("import json, torch; from napari_brats_seg.core.device import choose_precision; "
                                "print(json.dumps(choose_precision(torch.device('cpu'), 'deepmedic', 3, "
                                "'auto').dtype))")],
        env=port_env, capture_output=True, text=True, check=True).stdout)
    precisions = ["fp32"] + ([default] if default != "fp32" else [])
    runtimes = args.runtimes if args.runtimes is not None else _installed_runtimes(port_env)
    kinds = [(rt, prec) for rt in runtimes for prec in precisions]
    names = [f"port {rt} {prec}" for rt, prec in kinds]
    limits = lambda env: " ".join(f"{k}={env[k]}" for k in AVX2_ENV if k in env) or "none (native)"  # noqa: E731
    print(f"CPU: {cpu_description()}")
    print(f"ISA limits: original {limits(orig_env)}; port {limits(port_env)}; the port's default precision "
          f"here: {default}; its auto runtime here: {_auto_runtime(port_env)}")
    for rt in runtimes:  # exports and compiled-graph caches are paid once, before timing
        if rt != "torch":
            for prec in precisions:
                _warm(rt, prec, port_env)
    print(f"cases {', '.join(args.cases)}; {args.repeats} round(s), alternating original, "
          f"{', '.join(names)}; load average at the start {os.getloadavg()[0]:.2f}")
    print()
    print("| case | run | total s | network s | CPU s | ratio (total) | ratio (network) | ratio (CPU) | peak RSS GB "
          "| voxels different | Dice WT | TC | ET | voxels != port torch | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    results: dict[str, list[dict[str, Any]]] = {"original": [], **{n: [] for n in names}}
    worst = dict.fromkeys(names, (0, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for rep in range(args.repeats):
            for case_id in args.cases:
                case_dir = DATA / case_id
                ref = work / f"{case_id}_original_{rep}.nii.gz"
                load = os.getloadavg()[0]
                orig = run_original(case_dir, ref, orig_env)
                results["original"].append(orig)
                print(_row(case_id, "original", orig, None, load, None), flush=True)
                for (rt, prec), name in zip(kinds, names):
                    out = work / f"{case_id}_port_{rt}_{prec}_{rep}.nii.gz"
                    load = os.getloadavg()[0]
                    r = run_port(case_dir, out, prec, port_env, rt)
                    agree = agreement(out, ref)
                    torch_out = work / f"{case_id}_port_torch_{prec}_{rep}.nii.gz"
                    vs_torch = agreement(out, torch_out)[0] if rt != "torch" and torch_out.is_file() else None
                    results[name].append(r)
                    worst[name] = (max(worst[name][0], agree[0]), min(worst[name][1], *agree[1]))
                    print(_row(case_id, name, r, orig, load, agree, vs_torch), flush=True)
    print()
    o_tot = statistics.median(r["total"] for r in results["original"])
    o_net = statistics.median(r["network"] for r in results["original"])
    o_cpu = statistics.median(r["cpu"] for r in results["original"])
    print(f"medians: original {o_tot:.1f} s total, {o_net:.1f} s network, {o_cpu:.1f} CPU s")
    for name in names:
        rs = results[name]
        p_tot, p_net = statistics.median(r["total"] for r in rs), statistics.median(r["network"] for r in rs)
        p_cpu = statistics.median(r["cpu"] for r in rs)
        print(f"medians: {name} {p_tot:.1f} s total, {p_net:.1f} s network, {p_cpu:.1f} CPU s -> original / "
              f"port **{o_tot / p_tot:.2f}x** total, {o_net / p_net:.2f}x network, {o_cpu / p_cpu:.2f}x CPU time; "
              f"most voxels different in a case "
              f"{worst[name][0]:,}, lowest Dice {worst[name][1]:.4f}; peak RSS up to {max(r['rss'] for r in rs):.2f} GB")
    print(f"original peak RSS up to {max(r['rss'] for r in results['original']):.2f} GB; "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
