"""Fault injection for ``brats-seg segment --probabilities``: kill -9 at random points, a full disk.

Writes a small synthetic cohort (``brats-seg synth``), segments it once without faults (the
reference), then again into a fresh folder while killing the process with SIGKILL ``--kills`` times:
half at a random moment of the run, half the instant the n-th temporary ``.part`` file of the run
appears (n random: mid-write, inside a case's set).
After every kill it checks that each visible output file loads completely and that every case whose
label map (the commit mark) exists has its complete set of one run. A last re-run must exit 0, leave
no ``.part`` file, and give every case a complete set whose labels equal the reference voxel for
voxel. With ``--tmpfs`` (root with mount rights), the cohort is also written to a tmpfs too small to
hold it: the run must fail with "disk is full" lines naming the user's paths and leave no temporary
or half set; after growing the tmpfs a re-run must finish the work.

Usage::

    python scripts/fault_inject.py --cases 6 --kills 8 --seed 0 --tmpfs

Prints a summary and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_brats_seg.core.outputs import read_provenance  # noqa: E402

ROLES = ("seg", "prob_WT", "prob_TC", "prob_ET")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_brats_seg.cli", *args]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _segment(cohort: Path, out: Path, model: str) -> list[str]:
    return _cli("segment", str(cohort), "-o", str(out), "--model", model, "--probabilities", "--quiet")


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name] if folder.exists() else []


def check_outputs(out: Path, ids: list[str], need_all: bool) -> list[str]:
    """Problems of an output folder: a visible file that does not load, a committed set that is not
    complete or not of one run; with ``need_all``, a case without its set or a ``.part`` left."""
    problems = []
    visible = [f for f in out.glob("*.nii.gz") if not f.name.startswith(".")] if out.exists() else []
    for f in sorted(visible):
        try:
            np.asarray(nib.load(str(f)).dataobj)
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"{f.name}: does not load ({exc.__class__.__name__})")
    for cid in ids:
        seg = out / f"{cid}_seg.nii.gz"
        if not seg.exists():
            if need_all:
                problems.append(f"{cid}: no label map")
            continue
        sets = set()
        for r in ROLES:
            rec = read_provenance(out / f"{cid}_{r}.nii.gz")
            sets.add(rec["set"] if rec else None)
        if None in sets or len(sets) != 1:
            problems.append(f"{cid}: label map committed but its set is incomplete or mixed ({sets})")
    if need_all and _parts(out):
        problems.append(f"{len(_parts(out))} .part file(s) left: {[p.name for p in _parts(out)]}")
    return problems


def _same_labels(out: Path, ref: Path, ids: list[str]) -> list[str]:
    bad = []
    for cid in ids:
        a = np.asarray(nib.load(str(out / f"{cid}_seg.nii.gz")).dataobj)
        b = np.asarray(nib.load(str(ref / f"{cid}_seg.nii.gz")).dataobj)
        if not np.array_equal(a, b):
            bad.append(f"{cid}: labels differ from the uninterrupted run in {int((a != b).sum())} voxels")
    return bad


def _kill_run(cmd: list[str], at: float | None, nth: int, out: Path) -> str:
    """Run ``cmd`` and SIGKILL it ``at`` seconds in, or (None) the instant the ``nth`` temporary
    file of this run appears (4 per case: the kill lands inside a set, between its writes)."""
    before = set(_parts(out))  # stale ones of an earlier kill: not this run's writing
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    how, seen = "finished before the kill", set()
    while proc.poll() is None:
        now = time.perf_counter() - t0
        fresh = set(_parts(out)) - before
        seen |= fresh
        if (at is not None and now >= at) or (at is None and len(seen) >= nth):
            proc.send_signal(signal.SIGKILL)
            how = f"killed at {now:.2f} s" + (f" (mid-write: temporary file #{len(seen)} of this run on disk)"
                                              if at is None and fresh else "")
            break
        time.sleep(0.002 if at is None else 0.01)
    proc.wait()
    return how


def kill_campaign(work: Path, cohort: Path, ids: list[str], model: str, kills: int, rng: random.Random
                  ) -> tuple[list[str], list[str]]:
    """The SIGKILL part; returns (log lines, problems)."""
    log, problems = [], []
    ref = work / "reference"
    t0 = time.perf_counter()
    proc = subprocess.Popen(_segment(cohort, ref, model), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    startup = None
    while proc.poll() is None:
        if startup is None and list(ref.glob("*_seg.nii.gz")):
            startup = time.perf_counter() - t0
        time.sleep(0.01)
    rc, full = proc.returncode, time.perf_counter() - t0
    startup = startup or full
    per_case = max(full - startup, 0.1) / max(len(ids) - 1, 1)
    log.append(f"reference run: exit {rc}, {full:.1f} s for {len(ids)} cases (first case written at {startup:.1f} s)")
    if rc != 0:
        return log, [f"the reference run failed (exit {rc})"]
    out = work / "out"
    for k in range(kills):
        left = len(ids) - sum((out / f"{c}_seg.nii.gz").exists() for c in ids)
        if left == 0:
            log.append(f"the cohort was finished after {k} kill(s): nothing left to interrupt")
            break
        at = rng.uniform(0.3, startup + per_case * min(left, 3)) if k % 2 == 0 else None
        how = _kill_run(_segment(cohort, out, model), at, rng.randint(1, 4 * min(left, 3)), out)
        done = sum((out / f"{c}_seg.nii.gz").exists() for c in ids)
        found = check_outputs(out, ids, need_all=False)
        problems += [f"after kill {k + 1}: {p}" for p in found]
        log.append(f"kill {k + 1}: {how}; {done}/{len(ids)} cases committed, {len(_parts(out))} .part on disk, "
                   f"{'OK' if not found else 'PROBLEMS'}")
    res = subprocess.run(_segment(cohort, out, model), env=_env(), capture_output=True, text=True)
    summary = [ln for ln in res.stdout.splitlines() if ln.startswith(("done:", "note"))]
    log.append(f"re-run: exit {res.returncode}; " + " | ".join(summary))
    if res.returncode != 0:
        problems.append(f"the re-run exited {res.returncode}: {res.stdout[-400:]}")
    problems += check_outputs(out, ids, need_all=True)
    if not problems:
        problems += _same_labels(out, ref, ids)
    return log, problems


def disk_campaign(work: Path, cohort: Path, ids: list[str], model: str) -> tuple[list[str], list[str]]:
    """The full-disk part on a small tmpfs; skipped with a message where mounting is not allowed."""
    disk = work / "disk"
    disk.mkdir()
    ref_bytes = sum(f.stat().st_size for f in (work / "reference").glob("*.nii.gz"))
    size = max(64 * 1024, ref_bytes // 2)  # room for about half of the cohort's outputs
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if mount.returncode != 0:
        return [f"full disk: skipped (cannot mount a tmpfs here: {mount.stderr.decode().strip()})"], []
    log, problems = [], []
    try:
        out = disk / "out"
        res = subprocess.run(_segment(cohort, out, model), env=_env(), capture_output=True, text=True)
        fails = [ln for ln in res.stdout.splitlines() if ln.startswith("FAIL")]
        done = sum((out / f"{c}_seg.nii.gz").exists() for c in ids)
        log.append(f"full disk ({size // 1024} KiB tmpfs, outputs need {ref_bytes // 1024} KiB): exit "
                   f"{res.returncode}, {done}/{len(ids)} cases committed, {len(fails)} FAIL line(s)")
        if fails:
            log.append(f"  e.g. {fails[0]}")
        if res.returncode != 1 or not fails or not all("disk is full" in ln and ".part" not in ln for ln in fails):
            problems.append(f"full disk: expected exit 1 with 'disk is full' lines; got {res.returncode}: {fails}")
        if _parts(disk):
            problems.append(f"full disk: .part files left: {[p.name for p in _parts(disk)]}")
        problems += [f"full disk: {p}" for p in check_outputs(out, ids, need_all=False)]
        subprocess.run(["mount", "-o", f"remount,size={4 * ref_bytes + (1 << 20)}", str(disk)], check=True)
        res = subprocess.run(_segment(cohort, out, model), env=_env(), capture_output=True, text=True)
        summary = [ln for ln in res.stdout.splitlines() if ln.startswith("done:")]
        log.append(f"after freeing space, re-run: exit {res.returncode}; {' '.join(summary)}")
        problems += [f"full disk re-run: {p}" for p in check_outputs(out, ids, need_all=True)]
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    return log, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=14)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", type=int, nargs=3, default=(48, 48, 32))
    ap.add_argument("--model", default="unet3d-default", help="a fast model (default unet3d-default)")
    ap.add_argument("--tmpfs", action="store_true", help="also fill a small tmpfs (root with mount rights)")
    ap.add_argument("--workdir", type=Path, default=None, help="kept afterwards when given")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="brats-fault-"))
    work.mkdir(parents=True, exist_ok=True)
    cohort = work / "cohort"
    subprocess.run(_cli("synth", str(cohort), "--cases", str(args.cases), "--seed", str(args.seed), "--shape",
                        *map(str, args.shape)), env=_env(), check=True, capture_output=True)
    ids = sorted(p.name for p in cohort.iterdir() if p.is_dir())
    t0 = time.perf_counter()
    log, problems = kill_campaign(work, cohort, ids, args.model, args.kills, rng)
    if args.tmpfs:
        more, found = disk_campaign(work, cohort, ids, args.model)
        log += more
        problems += found
    print(f"fault injection: {len(ids)} synthetic cases {'x'.join(map(str, args.shape))}, model {args.model}, "
          f"--probabilities, seed {args.seed}, {time.perf_counter() - t0:.0f} s")
    for line in log:
        print("  " + line)
    print("RESULT: " + ("all checks passed" if not problems else f"{len(problems)} problem(s)"))
    for p in problems:
        print("  PROBLEM " + p)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
