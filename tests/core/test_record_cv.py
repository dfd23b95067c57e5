"""scripts/record_cv.py: the cross-validation table of a recipe's folds, recorded in the final checkpoint
only when every fold is done, so that ``brats-seg models`` and the default choice rank by it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny_unet import tiny_unet3d

from napari_brats_seg.core.models.checkpoint import read_spec, save_checkpoint
from napari_brats_seg.core.models.registry import dice_record

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "record_cv.py"
SRC = Path(__file__).resolve().parents[2] / "src"


def _fold_csv(path: Path, cases: dict[str, tuple[float, float, float]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["case", "region", "dice", "seconds"])
        w.writeheader()
        for case, dice in cases.items():
            for r, d in zip(("WT", "TC", "ET"), dice):
                w.writerow({"case": case, "region": r, "dice": d, "seconds": 1})
        w.writerow({"case": "mean", "region": "WT", "dice": 0.0, "seconds": 1})  # ignored: recomputed


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture()
def final(tmp_path: Path) -> Path:
    model = tiny_unet3d("regions")
    path = tmp_path / "v2.safetensors"
    save_checkpoint(path, model.network, model.spec)
    return path


def test_table_and_record_after_all_folds(tmp_path: Path, final: Path) -> None:
    _fold_csv(tmp_path / "v2-f0.heldout.csv", {"a": (0.9, 0.8, 0.7), "b": (0.7, 0.6, 0.5)})
    _fold_csv(tmp_path / "v2-f1.heldout.csv", {"c": (0.8, 0.7, 0.9)})
    partial = _run(str(tmp_path), "--name", "v2", "--folds", "2", "--into", str(final))
    assert partial.returncode == 0, partial.stderr
    assert "| 0 | a, b | 0.800 | 0.700 | 0.600 |" in partial.stdout
    assert "| **all** | 3 cases, each held out once | **0.800** | **0.700** | **0.700** |" in partial.stdout
    kind, rec = dice_record(read_spec(final).provenance)
    assert kind == "cross_validated" and (rec["WT"], rec["TC"], rec["ET"]) == (0.8, 0.7, 0.7)
    assert rec["folds"] == 2 and rec["cases"] == 3 and rec["per_fold"]["1"] == {"WT": 0.8, "TC": 0.7, "ET": 0.9}


def test_incomplete_cross_validation_is_printed_not_recorded(tmp_path: Path, final: Path) -> None:
    _fold_csv(tmp_path / "v2-f0.heldout.csv", {"a": (0.9, 0.8, 0.7)})
    before = read_spec(final).provenance
    res = _run(str(tmp_path), "--name", "v2", "--folds", "4", "--into", str(final))
    assert res.returncode == 1 and "only folds [0] of 4 are done: nothing recorded" in res.stderr
    assert "| 0 | a | 0.900 | 0.800 | 0.700 |" in res.stdout
    assert read_spec(final).provenance == before
    assert _run(str(tmp_path / "none"), "--name", "v2").returncode == 1
