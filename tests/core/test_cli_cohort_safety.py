"""``brats-seg segment`` on hostile cohorts (issue 12): bad cases, same ids, interrupted runs, outputs
that are not ours, unwritable and full disks. Synthetic 32x32x24 cases; a tiny seeded real checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _badfiles import header_only, with_sform

from napari_brats_seg.cli import main
from napari_brats_seg.core.models.checkpoint import save_checkpoint
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.unet3d import unet3d_spec
from napari_brats_seg.core.outputs import read_provenance
from napari_brats_seg.core.synth import write_cases

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (32, 32, 24)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = unet3d_spec("tiny-safety", output="regions", filters=[4, 4, 4], kernel_size=[[3, 3, 3]] * 3,
                       strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], upsample_kernel_size=[[2, 2, 2]] * 2,
                       deep_supervision=False, res_block=False, patch_size=(128, 128, 128))
    torch.manual_seed(0)
    net = build_network(spec).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", net, spec)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three synthetic cases (Synth1_000..002), written once; tests copy what they change."""
    return write_cases(tmp_path_factory.mktemp("synth"), 3, 1, shape=SHAPE)


def _copy(case: Path, dst: Path) -> Path:
    shutil.copytree(case, dst)
    return dst


def _seg(args: list[str], checkpoint: Path) -> list[str]:
    return ["segment", *args, "--model", str(checkpoint), "--quiet"]


def _no_parts(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if ".part" in p.name]


def test_bad_cases_are_one_line_each_and_the_cohort_goes_on(synth, checkpoint, tmp_path, capsys,
                                                             monkeypatch) -> None:
    root = tmp_path / "cohort"
    _copy(synth[0], root / "A_good")
    zero = _copy(synth[1], root / "B_zero_sform")
    t1 = zero / "Synth1_001_t1.nii.gz"
    with_sform(t1, t1, np.array([[0.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0]]))
    huge = _copy(synth[2], root / "C_huge")
    (huge / "Synth1_002_flair.nii.gz").unlink()
    header_only(huge / "Synth1_002_flair.nii.gz", (32767, 32767, 32767), b"\0" * 64)
    out = tmp_path / "out"
    assert main(_seg([str(root), "-o", str(out)], checkpoint)) == 1
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ln.startswith("FAIL")]
    assert len(lines) == 2
    assert "B_zero_sform (Synth1_001)" in lines[0] and "zero column" in lines[0] and str(t1) in lines[0]
    assert "C_huge (Synth1_002)" in lines[1] and "32767x32767x32767" in lines[1]
    assert "1 written, 0 skipped (already done), 2 failed" in text
    assert (out / "Synth1_000_seg.nii.gz").exists() and not (out / "Synth1_001_seg.nii.gz").exists()

    # an unexpected exception is a bug report naming the case; --debug adds the traceback
    from napari_brats_seg.core import inference

    def broken(*_a, **_k):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(inference, "predict", broken)
    assert main(_seg([str(synth[0]), "-o", str(tmp_path / "bug"), "--debug"], checkpoint)) == 1
    cap = capsys.readouterr()
    assert "FAIL  Synth1_000: internal error TypeError: unsupported operand" in cap.out
    assert "please report" in cap.out and "Traceback" in cap.err
    _no_parts(tmp_path)


def test_a_name_the_terminal_cannot_print_is_written_and_said(synth, checkpoint, tmp_path) -> None:
    case = tmp_path / "in" / "Caf\u00e9_1"
    case.mkdir(parents=True)
    for f in synth[0].iterdir():
        shutil.copy(f, case / f.name.replace("Synth1_000", "Caf\u00e9_1"))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONIOENCODING="ascii:strict", LC_ALL="C")
    proc = subprocess.run([sys.executable, "-m", "napari_brats_seg.cli", *_seg([str(case.parent), "-o", str(out)],
                           checkpoint)], capture_output=True, env=env, timeout=300)
    stdout = proc.stdout.decode("ascii")
    assert proc.returncode == 0, proc.stderr.decode("ascii", "replace")
    assert "ok    Caf\\xe9_1" in stdout and "1 written" in stdout
    assert (out / "Caf\u00e9_1_seg.nii.gz").exists()


def test_cases_with_the_same_id_write_apart(synth, checkpoint, tmp_path, capsys) -> None:
    root = tmp_path / "cohort"
    _copy(synth[0], root / "site1")
    site2 = _copy(synth[0], root / "site2")
    t1 = site2 / "Synth1_000_t1.nii.gz"  # another patient under the same id
    img = nib.load(str(t1))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::-1].copy(), img.affine, img.header), str(t1))
    out = tmp_path / "out"
    assert main(_seg([str(root), "-o", str(out), "--probabilities"], checkpoint)) == 0
    text = capsys.readouterr().out
    assert "2 cases have the id 'Synth1_000'" in text and "2 written" in text
    for site in ("site1", "site2"):
        rec = read_provenance(out / site / "Synth1_000_seg.nii.gz")
        assert rec is not None and rec["source_folder"] == str(root / site)
        assert (out / site / "Synth1_000_prob_ET.nii.gz").exists()
    assert not (out / "Synth1_000_seg.nii.gz").exists()
    assert main(_seg([str(root), "-o", str(out), "--probabilities"], checkpoint)) == 0
    assert "0 written, 2 skipped" in capsys.readouterr().out

    # two files with one id in one folder cannot be told apart by a path: refused before any work
    msd = write_cases(tmp_path / "msd", 1, 3, layout="msd", shape=SHAPE)[0]
    plain = msd.with_name(msd.name.replace(".nii.gz", ".nii"))
    nib.save(nib.load(str(msd)), str(plain))
    assert main(_seg([str(msd.parent), "-o", str(tmp_path / "o2")], checkpoint)) == 2
    err = capsys.readouterr().err
    assert "have the same id" in err and str(msd) in err and str(plain) in err
    assert not (tmp_path / "o2").exists()


def test_an_interrupted_run_is_finished_by_a_rerun(synth, checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    args = _seg([str(synth[0]), str(synth[1]), "-o", str(out), "--probabilities"], checkpoint)
    assert main(args) == 0
    capsys.readouterr()
    # as after kill -9: a half-written temporary of a dead process, an old-style one, and a set whose
    # side maps were renamed but whose label map (the commit mark) was not
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [out / f".Synth1_000_seg.nii.gz.{dead}-0123456789ab.part.nii.gz",
             out / f".Synth1_001_prob_WT.nii.gz.{'f' * 32}.part.nii.gz"]
    for p in stale:
        p.write_bytes(b"\x1f\x8b half")
    (out / "Synth1_000_seg.nii.gz").unlink()
    old_set = read_provenance(out / "Synth1_000_prob_TC.nii.gz")["set"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "removed 2 temporary file(s)" in text and "1 written, 1 skipped" in text
    _no_parts(out)
    sets = {read_provenance(out / f"Synth1_000_{r}.nii.gz")["set"] for r in ("seg", "prob_WT", "prob_TC", "prob_ET")}
    assert len(sets) == 1 and old_set not in sets  # one complete set, written together
    for f in out.glob("*.nii.gz"):
        assert np.asarray(nib.load(str(f)).dataobj).shape == SHAPE

    # a temporary file of a process that is still running is someone else's work: left alone
    live = out / f".Synth1_000_seg.nii.gz.{os.getppid()}-0123456789ab.part.nii.gz"
    live.write_bytes(b"busy")
    assert main(args) == 0
    assert live.exists() and "removed" not in capsys.readouterr().out


def test_only_this_tools_work_for_this_case_counts_as_done(synth, checkpoint, tmp_path, capsys) -> None:
    t1 = synth[0] / "Synth1_000_t1.nii.gz"
    before = t1.read_bytes()
    # an input image as -o: never "already done", never written over
    assert main(_seg([str(synth[0]), "-o", str(t1)], checkpoint)) == 1
    assert "is an input file of this run" in capsys.readouterr().out
    assert main(_seg([str(synth[0]), "-o", str(t1), "--overwrite"], checkpoint)) == 1
    capsys.readouterr()
    assert t1.read_bytes() == before
    # another case's output as -o
    other = tmp_path / "other.nii.gz"
    assert main(_seg([str(synth[1]), "-o", str(other)], checkpoint)) == 0
    capsys.readouterr()
    assert main(_seg([str(synth[0]), "-o", str(other)], checkpoint)) == 1
    assert "holds brats-seg's result for case 'Synth1_001'" in capsys.readouterr().out
    # this case's output, but its input changed since
    case = _copy(synth[0], tmp_path / "Synth1_000")
    mine = tmp_path / "mine.nii.gz"
    assert main(_seg([str(case), "-o", str(mine)], checkpoint)) == 0
    assert main(_seg([str(case), "-o", str(mine)], checkpoint)) == 0
    assert "skip  Synth1_000" in capsys.readouterr().out
    flair = case / "Synth1_000_flair.nii.gz"
    img = nib.load(str(flair))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) + 1, img.affine, img.header), str(flair))
    assert main(_seg([str(case), "-o", str(mine)], checkpoint)) == 1
    assert "other input files (flair changed since)" in capsys.readouterr().out


def test_an_unwritable_output_is_found_before_any_compute(synth, checkpoint, tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(_seg([str(synth[0]), "-o", str(blocker / "out")], checkpoint)) == 2
    cap = capsys.readouterr()
    assert str(blocker / "out") in cap.err and "not a folder" in cap.err and "model " not in cap.out
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root and mount rights)")
    try:
        assert main(_seg([str(synth[0]), "-o", str(ro / "out")], checkpoint)) == 2
        cap = capsys.readouterr()
        assert f"{ro / 'out'}: cannot write: Read-only file system" in cap.err and "model " not in cap.out
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_a_full_disk_is_said_with_the_users_path_and_leaves_nothing(synth, checkpoint, tmp_path, capsys) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    # 4 MB: room for the whole output set once the filler is gone, whatever the probability maps
    # compress to (their size follows the CPU's arithmetic: 256 KB was too small on AVX2 kernels)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        filler = disk / "filler"
        with open(filler, "wb") as f:  # leave a few pages: the probe fits, the outputs do not
            f.write(b"\0" * (4 * 1024 * 1024 - 8192))
        args = _seg([str(synth[0]), "-o", str(disk / "out"), "--probabilities"], checkpoint)
        assert main(args) == 1
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("FAIL"))
        assert "disk is full" in line and str(disk / "out") in line and ".part" not in line
        _no_parts(disk)
        assert not list((disk / "out").glob("*.nii.gz"))  # no half set
        filler.unlink()
        assert main(args) == 0
        assert len(list((disk / "out").glob("*.nii.gz"))) == 4
    finally:
        subprocess.run(["umount", str(disk)], check=False)
