"""scripts/choose_postprocess.py end to end: fold checkpoints of a tiny seeded model, synthetic cases.

The fold model's prediction is speckled (hundreds of components around one large one). The ground
truth written for the held-out cases is that prediction itself, either as it is (so every component
scores best) or with its largest component only (so keeping it scores best): the script must choose
accordingly, record the choice only when every fold is done, and ``predict`` must then apply it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny_unet import speckled_unet3d, tiny_unet3d

from napari_brats_seg.core.inference import predict
from napari_brats_seg.core.io import read_case, write_labels
from napari_brats_seg.core.models.checkpoint import load_checkpoint, read_spec, save_checkpoint
from napari_brats_seg.core.postprocess import keep_largest_component
from napari_brats_seg.core.synth import write_cases

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "choose_postprocess.py"
SHAPE = (32, 32, 24)


@pytest.fixture()
def state(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """STATE with folds 0 and 1 finished (checkpoint + held-out CSV) and fold 2 unfinished (no CSV)."""
    data = tmp_path / "data"
    cases = write_cases(data, 4, seed=3, shape=SHAPE)
    st = tmp_path / "state"
    model = speckled_unet3d()
    for k, held in enumerate((cases[:2], cases[2:], cases[:1])):
        spec = tiny_unet3d("regions").spec
        spec.name = f"v2-f{k}"
        spec.provenance = {"val_cases": [c.name for c in held], "data": [str(data)]}
        save_checkpoint(st / f"v2-f{k}.safetensors", model.network, spec)
        if k < 2:
            with (st / f"v2-f{k}.heldout.csv").open("w", newline="") as fh:
                w = csv.DictWriter(fh, ["case", "region", "dice", "seconds"])
                w.writeheader()
                w.writerows({"case": c.name, "region": r, "dice": 0.5, "seconds": 1}
                            for c in held for r in ("WT", "TC", "ET"))
    final = st / "v2.safetensors"
    save_checkpoint(final, model.network, tiny_unet3d("regions").spec)
    return st, final, cases


def _ground_truth_from_prediction(ckpt: Path, cases: list[Path], largest: bool) -> None:
    model = load_checkpoint(ckpt)
    for folder in cases:
        case = read_case(folder)
        labels = predict(case, model, device="cpu", runtime="torch", postprocess={"keep_largest": False}).labels
        assert labels.any() and (keep_largest_component(labels) != labels).any()  # the choice matters
        write_labels(keep_largest_component(labels) if largest else labels, case.geometry,
                     folder / f"{folder.name}_seg.nii.gz", overwrite=True)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--device", "cpu", "--runtime", "torch"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_largest_component_chosen_and_recorded_then_applied(state) -> None:
    st, final, cases = state
    _ground_truth_from_prediction(st / "v2-f0.safetensors", cases, largest=True)
    res = _run(str(st), "--name", "v2", "--folds", "2", "--into", str(final))
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert [r.split(" | ")[1] for r in rows] == [c.name for c in cases]  # each held-out case once, by fold
    assert all(r.rstrip(" |").endswith("1.000") for r in rows)  # largest only: the ground truth itself
    assert "| **mean** | 4 held-out cases |" in res.stdout
    assert "-> keep_largest: true" in res.stdout
    assert "in its CSV" in res.stderr  # the CSVs' made-up 0.5 differ from the Dice measured here
    prov = read_spec(final).provenance
    assert prov["postprocess"] == {"keep_largest": True}
    evidence = prov["postprocess_cv"]["keep_largest"]
    assert evidence["chosen"] is True and evidence["folds"] == [0, 1] and evidence["cases"] == 4
    assert evidence["dice_largest_only"]["mean"] > evidence["dice_all_components"]["mean"]
    seg = predict(read_case(cases[0]), load_checkpoint(final), device="cpu", runtime="torch",
                  postprocess={"min_component_voxels": 0, "et_min_voxels": 0})  # the Segment widget's dict
    assert seg.info["postprocess"]["options"]["keep_largest"] is True
    assert seg.info["postprocess"]["from_model"] == ["keep_largest"] and seg.info["postprocess"]["removed_voxels"] > 0


def test_every_component_chosen_and_an_unfinished_cv_is_not_recorded(state) -> None:
    st, final, cases = state
    _ground_truth_from_prediction(st / "v2-f0.safetensors", cases, largest=False)
    before = read_spec(final).provenance
    res = _run(str(st), "--name", "v2", "--folds", "3", "--into", str(final))
    assert res.returncode == 1 and "only folds [0, 1] of 3 are done: nothing recorded" in res.stderr
    assert "-> keep_largest: false" in res.stdout and "| **mean** | 4 held-out cases |" in res.stdout
    assert read_spec(final).provenance == before
    assert _run(str(st / "none"), "--name", "v2").returncode == 1


def test_a_tie_keeps_every_component() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import choose_postprocess as cp
    finally:
        sys.path.remove(str(SCRIPT.parent))
    same = {"WT": 0.8, "TC": 0.7, "ET": 0.6}
    assert cp.choose({0: {"a": {cp.WAYS[0]: same, cp.WAYS[1]: dict(same)}}}) is False
    better = {"WT": 0.9, "TC": 0.7, "ET": 0.6}
    assert cp.choose({0: {"a": {cp.WAYS[0]: same, cp.WAYS[1]: better}}}) is True
