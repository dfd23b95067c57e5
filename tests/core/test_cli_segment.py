"""``brats-seg segment``: cohorts, skip and overwrite rules, failures, side maps, torchrun rank split.

Cases are 32x32x24 crops around the tumours of two real BraTS 2018 cases; the model is a tiny seeded
DynUNet saved as a real checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _crop import tumour_window

from napari_brats_seg.cli import main
from napari_brats_seg.commands.segment import rank_share
from napari_brats_seg.core.models import registry
from napari_brats_seg.core.models.checkpoint import save_checkpoint
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.unet3d import unet3d_spec

CROP = (32, 32, 24)
CASES = ("Brats18_2013_11_1", "Brats18_TCIA10_628_1")


def _crop_case(src: Path, dst_root: Path) -> Path:
    cid = src.name
    sl, shift = tumour_window(src / f"{cid}_seg.nii.gz", CROP)
    out = dst_root / cid
    out.mkdir(parents=True)
    for suffix in ("t1", "t1ce", "t2", "flair"):
        img = nib.load(str(src / f"{cid}_{suffix}.nii.gz"))
        new = nib.Nifti1Image(np.asarray(img.dataobj)[sl], img.affine @ shift, img.header.copy())
        nib.save(new, str(out / f"{cid}_{suffix}.nii.gz"))
    return out


@pytest.fixture(scope="module")
def cohort(brats2018_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    for cid in CASES:
        _crop_case(brats2018_dir / cid, root)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = unet3d_spec("tiny-cli", output="regions", filters=[4, 4, 4], kernel_size=[[3, 3, 3]] * 3,
                       strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], upsample_kernel_size=[[2, 2, 2]] * 2,
                       deep_supervision=False, res_block=False, patch_size=(128, 128, 128))
    torch.manual_seed(0)
    net = build_network(spec).eval()
    with torch.no_grad():
        net.net.output_block.conv.conv.bias.copy_(torch.tensor([0.3, 0.1, -0.1]))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", net, spec)


def _same_grid(out: Path, src: Path) -> None:
    a, b = nib.load(str(out)), nib.load(str(src))
    assert a.shape == b.shape
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)


def test_cohort_is_written_then_skipped_then_overwritten(cohort, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(cohort), "-o", str(out), "--model", str(checkpoint), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "2 written, 0 skipped" in text and text.count("ok    ") == 2
    files = {cid: out / f"{cid}_seg.nii.gz" for cid in CASES}
    for cid, f in files.items():
        _same_grid(f, cohort / cid / f"{cid}_t1.nii.gz")
        assert set(np.unique(np.asarray(nib.load(str(f)).dataobj))) <= {0, 1, 2, 4}
    stamps = {cid: f.stat().st_mtime_ns for cid, f in files.items()}

    assert main(["segment", str(cohort), "-o", str(out), "--model", str(checkpoint), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "0 written, 2 skipped" in text and text.count("skip  ") == 2
    assert {cid: f.stat().st_mtime_ns for cid, f in files.items()} == stamps

    assert main(["segment", str(cohort), "-o", str(out), "--model", str(checkpoint), "--quiet",
                 "--overwrite"]) == 0
    assert "2 written" in capsys.readouterr().out
    assert all(f.stat().st_mtime_ns != stamps[cid] for cid, f in files.items())


def test_one_case_one_file_never_overwritten_silently(cohort, checkpoint, tmp_path, capsys):
    case = cohort / CASES[0]
    target = tmp_path / "pred.nii.gz"
    target.write_bytes(b"keep me")
    assert main(["segment", str(case), "-o", str(target), "--model", str(checkpoint), "--quiet"]) == 0
    assert "use --overwrite" in capsys.readouterr().out
    assert target.read_bytes() == b"keep me"

    args = ["segment", str(case), "-o", str(target), "--model", str(checkpoint), "--quiet", "--overwrite",
            "--scheme", "brats2023", "--probabilities", "--uncertainty"]
    assert main(args) == 0
    capsys.readouterr()
    _same_grid(target, case / f"{CASES[0]}_t1.nii.gz")
    assert set(np.unique(np.asarray(nib.load(str(target)).dataobj))) <= {0, 1, 2, 3}
    for name in ("pred_prob_WT", "pred_prob_TC", "pred_prob_ET", "pred_uncertainty"):
        side = tmp_path / f"{name}.nii.gz"
        _same_grid(side, case / f"{CASES[0]}_t1.nii.gz")
        data = np.asarray(nib.load(str(side)).dataobj)
        assert data.dtype == np.float32 and data.min() >= 0 and data.max() <= 1


def test_a_failing_case_is_reported_and_the_others_go_on(cohort, checkpoint, tmp_path, capsys):
    root = tmp_path / "mixed"
    good = root / CASES[0]
    good.mkdir(parents=True)
    for f in (cohort / CASES[0]).iterdir():
        os.symlink(f, good / f.name)
    bad = root / "Broken_1"
    bad.mkdir()
    for i, suffix in enumerate(("t1", "t1ce", "t2", "flair")):
        shape = (8, 8, 8) if i else (8, 8, 9)  # t1 does not lie on the grid of the others
        img = nib.Nifti1Image(np.ones(shape, np.int16), np.diag([-1.0, -1, 1, 1]))
        nib.save(img, str(bad / f"Broken_1_{suffix}.nii.gz"))
    out = tmp_path / "out"
    assert main(["segment", str(root), "-o", str(out), "--model", str(checkpoint), "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "FAIL  Broken_1" in text and "1 written, 0 skipped (already done), 1 failed" in text
    assert (out / f"{CASES[0]}_seg.nii.gz").exists() and not (out / "Broken_1_seg.nii.gz").exists()


def test_torchrun_ranks_split_the_cohort(cohort, checkpoint, tmp_path, capsys, monkeypatch):
    assert rank_share(list("abcde"), {"RANK": "1", "WORLD_SIZE": "2"}) == (["b", "d"], 1, 2)
    assert rank_share(list("abc"), {}) == (list("abc"), 0, 1)
    out = tmp_path / "out"
    written = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        before = set(out.glob("*.nii.gz")) if out.exists() else set()
        assert main(["segment", str(cohort), "-o", str(out), "--model", str(checkpoint), "--quiet"]) == 0
        assert f"[rank {rank}/2] done: 1 written" in capsys.readouterr().out
        new = set(out.glob("*.nii.gz")) - before
        assert len(new) == 1
        written += list(new)
    assert sorted(p.name for p in written) == sorted(f"{cid}_seg.nii.gz" for cid in CASES)


def test_missing_or_bad_model_is_a_clear_error(cohort, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "no-weights")
    assert main(["segment", str(cohort), "-o", str(tmp_path / "o")]) == 2
    assert "no model is shipped or installed" in capsys.readouterr().err
    assert main(["segment", str(cohort), "-o", str(tmp_path / "o"), "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_labels_follow_the_case_naming_unless_a_scheme_is_asked(cohort, checkpoint, tmp_path):
    """BraTS 2023-named input -> 1/2/3 output by default; --scheme brats2021 gives 1/2/4."""
    from napari_brats_seg.core import labels as lab
    from napari_brats_seg.core.io import read_labels

    src = cohort / CASES[0]
    named = tmp_path / "BraTS-GLI-00099-000"
    named.mkdir()
    for old, new in (("t1", "t1n"), ("t1ce", "t1c"), ("t2", "t2w"), ("flair", "t2f")):
        (named / f"{named.name}-{new}.nii.gz").write_bytes((src / f"{src.name}_{old}.nii.gz").read_bytes())
    out23, out21 = tmp_path / "auto.nii.gz", tmp_path / "b21.nii.gz"
    assert main(["segment", str(named), "-o", str(out23), "--model", str(checkpoint), "--quiet"]) == 0
    assert main(["segment", str(named), "-o", str(out21), "--model", str(checkpoint), "--quiet",
                 "--scheme", "brats2021"]) == 0
    a, _, _ = read_labels(out23, scheme="brats2023")
    b, _, _ = read_labels(out21, scheme="brats2021")
    assert np.array_equal(a, b)  # the same prediction, written in two conventions
    raw23 = np.asarray(nib.load(str(out23)).dataobj)
    raw21 = np.asarray(nib.load(str(out21)).dataobj)
    assert (a == lab.ENHANCING).any()  # the tiny seeded model does predict enhancing tumour here
    assert 3 in raw23 and 4 not in raw23 and 4 in raw21 and 3 not in raw21
