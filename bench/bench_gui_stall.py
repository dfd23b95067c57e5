"""The longest stall of napari's event loop while the Segment widget runs each model.

A real napari viewer (run it under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1200x24" python
bench/bench_gui_stall.py``) loads a real case through the plugin's Load widget, then starts a run
through the Segment widget with each model in turn. A ``QTimer`` ticks every 10 ms on the GUI thread
from the click on *Run* until the result layer is in the viewer (plus ``--settle`` seconds, so that
the first draw of the new layer is counted); a gap between two ticks is time the event loop could not
serve the user (no repaint, no click). A watchdog thread samples the GUI thread's Python stack
during every gap over 100 ms, which says what the loop was busy with.

Models: ``unet3d-default`` and ``cascade-default`` (shipped), ``deepmedic`` (the CaPTk DeepMedic of
``../shared/models/captk-deepmedic``, through its folder as *Folder...* takes it) and ``bundle`` (a
MONAI bundle folder written here with the ``brats_mri_segmentation`` configuration and seeded random
weights: no pretrained bundle can be downloaded offline; the stall does not depend on the weights). A
model that cannot be had is skipped with the reason.

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" python bench/bench_gui_stall.py \\
        [--case ../shared/data/brats2018/Brats18_2013_11_1] [--models unet3d-default,cascade-default,deepmedic,bundle] \\
        [--profile] [--bare]

It prints a Markdown table: per model the run's seconds, the longest stall, how much of it Python's
garbage collector took (a collection holds the interpreter lock, whichever thread runs it), the
longest collection of the run, the 99th percentile gap, the number of gaps over 100 ms, and where the
GUI thread was during the longest stall.

``--profile`` samples the GUI thread's whole stack every 5 ms of every gap over 30 ms and prints,
for the three longest stalls of each row, the functions the thread spent them in (inclusive time,
the common event-loop frames left out): which napari, vispy or plugin call took the time.
``--bare`` adds rows for napari alone in the same viewer (``add_labels`` / ``add_image`` of zeros of
the case's shape and placement, no plugin code): napari's own fixed cost per layer.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# recovery files of the runs go to a folder of this run, never to the user's data folder
os.environ.setdefault("NAPARI_BRATS_SEG_DATA_DIR", tempfile.mkdtemp(prefix="bench_gui_stall_data_"))

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT.parent / "shared" / "data" / "brats2018" / "Brats18_2013_11_1"
DEEPMEDIC = ROOT.parent / "shared" / "models" / "captk-deepmedic"
PLUGIN = "napari-brats-seg"
#: A gap longer than this is a stall (ms); the target is to have none.
STALL_MS = 100.0
#: With ``--profile``, the GUI thread's stack is sampled in every gap longer than this (ms).
PROFILE_FROM_MS = 30.0
#: The bundle's network definition and inferer (configs/inference.json of brats_mri_segmentation).
BUNDLE_INFERENCE = {
    "network_def": {"_target_": "SegResNet", "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1],
                    "init_filters": 16, "in_channels": 4, "out_channels": 3, "dropout_prob": 0.2},
    "network": "$@network_def.to(@device)",
    "device": "$torch.device('cpu')",
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}]},
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [240, 240, 160], "sw_batch_size": 1,
                "overlap": 0.5},
}
BUNDLE_METADATA = {
    "version": "0.3.0", "task": "Multimodal Brain Tumor segmentation",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 4,
                             "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32",
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                             "spatial_shape": ["8*n", "8*n", "8*n"], "dtype": "float32",
                             "channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}}},
}


class StallMonitor:
    """Ticks of a 10 ms ``QTimer`` on the GUI thread, and samples of that thread's stack in stalls.

    With ``profile`` the watchdog samples the whole stack every 5 ms of every gap over
    :data:`PROFILE_FROM_MS` (a sampling profiler restricted to the stalls), and :meth:`stop` adds, per
    stall over :data:`STALL_MS`, the functions the GUI thread spent that stall in (inclusive time).
    """

    def __init__(self, interval_ms: int = 10, profile: bool = False) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []
        self.samples: list[tuple[float, str]] = []  # (time, where) taken while the loop stalled
        self.stacks: list[tuple[float, list[str]]] = []  # (time, frames outermost first), profile mode
        self.collections: list[tuple[float, float, int]] = []  # garbage collections: (start, end, generation)
        self._gc_start: float | None = None
        self.profile = profile
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` hook: every collection's (start, end, generation), whichever thread ran it
        (a collection holds the GIL, so the GUI thread waits for one run by a worker)."""
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        elif self._gc_start is not None:
            self.collections.append((self._gc_start, now, int(info.get("generation", -1))))
            self._gc_start = None

    def _watchdog(self) -> None:
        period = 0.005 if self.profile else 0.02
        while not self._stop.wait(period):
            last = self.ticks[-1] if self.ticks else None
            now = time.perf_counter()
            gap_ms = (now - last) * 1000 if last is not None else 0.0
            if gap_ms <= (PROFILE_FROM_MS if self.profile else STALL_MS):
                continue
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            if gap_ms > STALL_MS:
                self.samples.append((now, where(stack)))
            if self.profile:
                self.stacks.append((now, [frame_name(f) for f in stack]))

    def profile_of(self, lo: float, hi: float, top: int = 12) -> list[tuple[float, str]]:
        """``(ms, function)`` of the functions the GUI thread was in between ``lo`` and ``hi`` (inclusive
        time: a function counts once per sample it is anywhere on the stack), most first; the frames
        on every sample's stack (the event loop down to the handler that stalled) are left out
        but for the innermost of them, which names that handler."""
        period_ms = 5.0
        counts: Counter[str] = Counter()
        stacks = [frames for s, frames in self.stacks if lo <= s <= hi]
        for frames in stacks:
            counts.update(set(frames))
        common = [f for f in stacks[0] if counts[f] == len(stacks)] if stacks else []
        shown = [(n, f) for f, n in counts.most_common() if f not in common[:-1]]
        return [(n * period_ms, f) for n, f in shown[:top]]

    def start(self) -> None:
        self.ticks, self.samples, self.stacks, self.collections = [time.perf_counter()], [], [], []
        if self._gc not in gc.callbacks:
            gc.callbacks.append(self._gc)
        self._stop.clear()
        self._watch = threading.Thread(target=self._watchdog, daemon=True)
        self._watch.start()
        self.timer.start()

    def stop(self) -> dict[str, Any]:
        """Stop and summarise: longest gap, 99th percentile, gaps over :data:`STALL_MS`, where."""
        self.timer.stop()
        self._stop.set()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._watch is not None:
            self._watch.join()
        t = np.asarray(self.ticks)
        gaps = np.diff(t) * 1000 if len(t) > 1 else np.zeros(1)
        i = int(np.argmax(gaps))
        lo, hi = t[i], t[i + 1] if len(t) > 1 else t[i]
        during = Counter(w for s, w in self.samples if lo <= s <= hi)
        profiles = []
        if self.profile:
            for j in np.argsort(-gaps)[:3]:
                if gaps[j] > STALL_MS:
                    profiles.append((float(gaps[j]), self.profile_of(t[j], t[j + 1])))
        in_gc = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b, _ in self.collections) * 1000
        return {"profiles": profiles, "gc_ms": in_gc,
                "gc_max_ms": max(((b - a) * 1000 for a, b, _ in self.collections), default=0.0),
                "longest_ms": float(gaps.max()), "p99_ms": float(np.percentile(gaps, 99)),
                "over": int((gaps > STALL_MS).sum()), "ticks": len(t),
                "where": during.most_common(1)[0][0] if during else "-",
                "stalls": Counter(w for _, w in self.samples).most_common(5)}


def frame_name(f: traceback.FrameSummary) -> str:
    """``package/module.py:function`` of one frame (no line number: a profile adds up per function)."""
    return f"{'/'.join(Path(f.filename).parts[-2:])}:{f.name}"


def where(stack: traceback.StackSummary, inner: int = 2) -> str:
    """The innermost frame of the project's code and the ``inner`` innermost frames of all, in a few words."""
    def name(f: traceback.FrameSummary) -> str:
        return f"{'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} {f.name}"

    ours = [f for f in stack if "napari_brats_seg" in f.filename and not f.filename.endswith("bench_gui_stall.py")]
    parts = [name(ours[-1])] if ours else []
    parts += [name(f) for f in stack[-inner:] if not ours or f is not ours[-1]]
    return " > ".join(parts)


def wait_until(cond: Callable[[], bool], timeout_s: float) -> bool:
    """Run the Qt event loop until ``cond()`` holds or ``timeout_s`` passes; returns ``cond()``."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    end = time.perf_counter() + timeout_s
    check = QTimer()
    check.setInterval(20)
    check.timeout.connect(lambda: (cond() or time.perf_counter() > end) and loop.quit())
    check.start()
    if not cond():
        loop.exec()
    check.stop()
    return bool(cond())


def write_bundle(root: Path, seed: int = 0) -> Path:
    """A MONAI bundle folder: the brats_mri_segmentation configuration with seeded random weights."""
    import torch
    from monai.networks.nets import SegResNet

    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "configs" / "inference.json").write_text(json.dumps(BUNDLE_INFERENCE, indent=2))
    (root / "configs" / "metadata.json").write_text(json.dumps(BUNDLE_METADATA, indent=2))
    torch.manual_seed(seed)
    net = SegResNet(**{k: v for k, v in BUNDLE_INFERENCE["network_def"].items() if k != "_target_"})
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def model_source(name: str, tmp: Path) -> tuple[str | None, str]:
    """``(source for SegmentWidget.add_model, note)``; source None when the model cannot be had."""
    from napari_brats_seg.core.models.registry import list_models

    if name == "deepmedic":
        if not (DEEPMEDIC / "README.md").exists() and not any(DEEPMEDIC.glob("*")):
            return None, f"skipped: {DEEPMEDIC} not found"
        return str(DEEPMEDIC), "CaPTk DeepMedic folder"
    if name == "bundle":
        try:
            return str(write_bundle(tmp / "brats_mri_segmentation")), "bundle config, random weights"
        except Exception as exc:  # noqa: BLE001 - a bench reports why a row is missing
            return None, f"skipped: cannot write a bundle ({type(exc).__name__}: {exc})"
    shipped = {i["name"]: i["source"] for i in list_models() if "error" not in i}
    if name in shipped:
        return name, "shipped"
    return None, f"skipped: not installed (installed: {', '.join(shipped) or 'none'})"


def cpu_line() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
        flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        name, flags = platform.processor(), set()
    keep = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    forced = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name or 'unknown CPU'}, {os.cpu_count()} CPUs, flags {keep}" + (
        f", forced ONEDNN_MAX_CPU_ISA={forced}" if forced else "")


def run_model(viewer: Any, seg: Any, mon: StallMonitor, source: str, timeout_s: float, settle_s: float
              ) -> dict[str, Any]:
    """One Segment run of ``source``: seconds to the result layer and the monitor's summary."""
    seg.add_model(source)
    before = seg.last_layer
    n_layers = len(viewer.layers)
    mon.start()
    t0 = time.perf_counter()
    task = seg.run()
    if task is None:
        mon.stop()
        return {"error": "the widget did not start a run"}
    failed: list[str] = []
    task.failed.connect(lambda exc: failed.append(str(exc)))
    got = wait_until(lambda: seg.last_layer is not before or bool(failed), timeout_s)
    seconds = time.perf_counter() - t0
    if not got or failed:
        if not got:
            seg.cancel()
        wait_until(lambda: seg.task is None, 120)
        mon.stop()
        return {"error": failed[0] if failed else f"no result within {timeout_s:.0f} s (cancelled)"}
    wait_until(lambda: False, settle_s)  # the new layer's first draws
    res = mon.stop()
    wait_until(lambda: seg.task is None, 60)
    res.update(seconds=seconds, layers=len(viewer.layers) - n_layers, info=seg.last_result.info)
    return res


def bare_napari(viewer: Any, mon: StallMonitor, settle_s: float) -> list[tuple[str, str, dict[str, Any]]]:
    """napari alone, none of the plugin's code: the stall of ``add_labels`` of a zero label map and of
    ``add_image`` of a float volume (contrast limits given) of the open case's shape and placement;
    the layers are removed again."""
    ref = viewer.layers[0]
    shape, place = ref.data.shape, {"scale": tuple(ref.scale), "translate": tuple(ref.translate)}
    rows = []
    for what, make in (("labels", lambda: viewer.add_labels(np.zeros(shape, np.uint8), name="bare", **place)),
                       ("image", lambda: viewer.add_image(np.zeros(shape, np.float32), name="bare",
                                                          contrast_limits=(0.0, 1.0), **place))):
        mon.start()
        t0 = time.perf_counter()
        layer = make()
        seconds = time.perf_counter() - t0
        wait_until(lambda: False, settle_s)
        res = mon.stop()
        res["seconds"] = seconds
        viewer.layers.remove(layer)
        wait_until(lambda: False, 0.3)
        rows.append((f"napari alone: viewer.add_{what}(np.zeros({shape}))", "no plugin code", res))
    return rows


def print_profiles(name: str, res: dict[str, Any]) -> None:
    """The ``--profile`` samples of the longest stalls of one row."""
    for gap_ms, funcs in res.get("profiles", []):
        print(f"  profile of a {gap_ms:.0f} ms stall in '{name}' (inclusive ms, 5 ms samples):")
        for ms, func in funcs:
            print(f"    {ms:6.0f}  {func}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--models", default="unet3d-default,cascade-default,deepmedic,bundle")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take (then cancelled)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds counted after the result appears")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of the idle baseline row")
    ap.add_argument("--profile", action="store_true",
                    help="sample the GUI thread's stack in every stall and print where each long stall went")
    ap.add_argument("--bare", action="store_true",
                    help="also time napari alone: add_labels / add_image of arrays of the case's size")
    args = ap.parse_args()

    from qtpy.QtWidgets import QApplication

    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1100)
    _, load = viewer.window.add_plugin_dock_widget(PLUGIN, "Load")
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    QApplication.processEvents()
    mon = StallMonitor(profile=args.profile)
    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_stall_"))
    print(f"machine: {cpu_line()}; load average before: {os.getloadavg()[0]:.2f}; napari {napari.__version__}; "
          f"Qt platform {QApplication.platformName()}")
    print(f"case {args.case.name}; QTimer every 10 ms on the GUI thread; a stall is a gap over {STALL_MS:.0f} ms")

    rows: list[tuple[str, str, dict[str, Any]]] = []
    mon.start()
    t0 = time.perf_counter()
    load.inspect(str(args.case))
    task = load.load()
    ok = task is not None and wait_until(lambda: load.task is None and len(viewer.layers) >= 4, args.timeout)
    loaded = time.perf_counter() - t0
    wait_until(lambda: False, args.settle)
    res = mon.stop()
    res["seconds"] = loaded
    rows.append(("Load widget: read the case + add its layers", "-" if ok else "failed", res))
    mon.start()  # the same viewer doing nothing: what the machine alone costs the event loop
    wait_until(lambda: False, args.idle)
    res = mon.stop()
    res["seconds"] = args.idle
    rows.append(("idle viewer, case loaded, nothing running", "baseline", res))
    if args.bare:
        rows += bare_napari(viewer, mon, args.settle)
    for name in [m for m in args.models.split(",") if m]:
        source, note = model_source(name, tmp)
        if source is None:
            rows.append((name, note, {}))
            continue
        res = run_model(viewer, seg, mon, source, args.timeout, args.settle)
        if "info" in res:
            note = f"{note}; {res['info'].get('dtype')}, {res['info'].get('mode')}"
        rows.append((name, res.get("error", note), res))
        print(f"  {name}: {json.dumps({k: v for k, v in res.items() if k not in ('info', 'profiles')}, default=str)}",
              flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for name, _note, r in rows:
        print_profiles(name, r)
    print()
    print("| run | notes | seconds | longest stall (ms) | of it in garbage collection (ms) | longest collection "
          "(ms) | 99th percentile gap (ms) | gaps > 100 ms | GUI thread during the longest stall |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name, note, r in rows:
        if "longest_ms" not in r:
            print(f"| {name} | {note} | - | - | - | - | - | - | - |")
            continue
        print(f"| {name} | {note} | {r['seconds']:.1f} | {r['longest_ms']:.0f} | {r['gc_ms']:.0f} | "
              f"{r['gc_max_ms']:.0f} | {r['p99_ms']:.0f} | {r['over']} | {r['where']} |")
    worst = max((r["longest_ms"] for _, _, r in rows if "longest_ms" in r), default=0.0)
    print(f"target (every stall under {STALL_MS:.0f} ms): {'met' if worst < STALL_MS else 'NOT met'} "
          f"(longest {worst:.0f} ms)")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
