"""``brats-seg train`` and ``brats-seg evaluate`` end to end, and a 2-process DDP run under torchrun
(gloo on CPU), on tiny synthetic cases."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_brats_seg.cli import main
from napari_brats_seg.core.models.checkpoint import load_checkpoint
from napari_brats_seg.core.synth import write_cases

TINY = json.dumps({"filters": [4, 8, 16], "kernel_size": [[3, 3, 3]] * 3,
                   "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "upsample_kernel_size": [[2, 2, 2]] * 2})


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cases")
    write_cases(root, 4, seed=11, shape=(32, 32, 32))
    return root


def test_train_then_evaluate_heldout_at_reduced_resolution(cases: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.safetensors"
    rc = main(["train", str(cases), "-o", str(out), "--arch", TINY, "--factor", "2", "--patch", "16", "16", "16",
               "--epochs", "2", "--iters", "2", "--folds", "4", "--fold", "1", "--threads", "1", "--quiet"])
    assert rc == 0
    assert "best validation Dice" in capsys.readouterr().out
    spec = load_checkpoint(out).spec
    assert spec.spacing == (2.0, 2.0, 2.0) and spec.provenance["split"] == {"folds": 4, "fold": 1}
    held = spec.provenance["val_cases"]
    assert len(held) == 1
    table = tmp_path / "eval.csv"
    rc = main(["evaluate", str(out), str(cases), "--heldout", "--csv", str(table)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert held[0] in printed and "mean" in printed
    rows = list(csv.DictReader(table.open()))
    assert [(r["case"], r["region"]) for r in rows] == [(held[0], r) for r in ("WT", "TC", "ET")] + \
        [("mean", r) for r in ("WT", "TC", "ET")]
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert rows[0]["dice"] == rows[3]["dice"] or abs(float(rows[0]["dice"]) - float(rows[3]["dice"])) < 1e-9


def test_train_rejects_a_wrong_patch_and_missing_data(cases: Path, tmp_path: Path, capsys) -> None:
    rc = main(["train", str(cases), "-o", str(tmp_path / "x.safetensors"), "--patch", "16", "16", "--quiet"])
    assert rc == 2 and "3 numbers" in capsys.readouterr().err
    rc = main(["train", str(tmp_path / "nothing"), "-o", str(tmp_path / "y.safetensors"), "--quiet"])
    assert rc == 2 and "no usable training case" in capsys.readouterr().err


def test_ddp_two_processes_with_gloo(cases: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "napari_brats_seg.cli", "train", str(cases), "-o", str(out), "--arch", TINY,
           "--patch", "16", "16", "16", "--epochs", "1", "--iters", "2", "--batch-size", "1",
           "--val-fraction", "0.25", "--threads", "1", "--quiet"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = load_checkpoint(out)
    assert loaded.spec.provenance["world_size"] == 2
    assert loaded.spec.provenance["epochs"] == 1
