"""Training core: a short run lowers the loss and writes a loadable checkpoint; resume continues;
fine-tuning records its origin; broken cases are reported one by one; cancel stops; splits and
class weights. Tiny synthetic cases (32^3) and tiny networks keep it fast."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_brats_seg.core.errors import Cancelled
from napari_brats_seg.core.losses import class_weights
from napari_brats_seg.core.models.checkpoint import load_checkpoint
from napari_brats_seg.core.progress import CancelToken
from napari_brats_seg.core.synth import write_cases
from napari_brats_seg.core.training import TrainConfig, TrainResult, train
from napari_brats_seg.core.training import data as ds
from napari_brats_seg.core.training.resume import state_path
from napari_brats_seg.core.training.split import split_cases

#: A 3-level DynUNet small enough to train in seconds.
TINY_UNET = {"filters": [4, 8, 16], "kernel_size": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
             "upsample_kernel_size": [[2, 2, 2]] * 2}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_cases(root, 4, seed=3, shape=(32, 32, 32))
    return root


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = {"data": [str(data)], "output": str(out), "family": "unet3d", "arch": TINY_UNET, "patch": (24, 24, 24),
                "epochs": 3, "iters_per_epoch": 4, "batch_size": 2, "lr": 1e-2, "val_fraction": 0.25, "affine_prob": 0.0,
                "seed": 0, "threads": 1}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, TrainResult]:
    out = tmp_path_factory.mktemp("run") / "tiny.safetensors"
    calls: list = []
    result = train(_config(synth_dir, out, epochs=6), on_progress=lambda d, t, m: calls.append((d, t)))
    return result.checkpoint, calls, result


def test_short_run_lowers_loss_and_writes_loadable_checkpoint(trained: tuple[Path, list, TrainResult]) -> None:
    path, calls, result = trained
    assert calls[-1] == (24, 24) and [c[0] for c in calls] == list(range(1, 25))
    # the result object says what the files say
    assert result.checkpoint == path and result.state == state_path(path) and result.state.is_file()
    assert result.log == path.with_name("tiny.log.csv") and result.plot == path.with_name("tiny.png")
    assert result.epochs == len(result.history) == 6 and result.problems == [] and result.seconds > 0
    assert result.best_dice is not None and result.last_dice is not None
    assert abs(result.best_dice["mean"] - max(h["val_dice_mean"] for h in result.history)) < 1e-4
    assert result.last_dice == {k[9:]: round(v, 4) for k, v in result.history[-1].items()
                                if k.startswith("val_dice_")}
    rows = list(csv.DictReader(path.with_name("tiny.log.csv").open()))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(rows) == 6
    assert min(losses[-2:]) < losses[0]
    assert all(0.0 <= float(r["val_dice_WT"]) <= 1.0 for r in rows)
    assert path.with_name("tiny.png").stat().st_size > 1000
    loaded = load_checkpoint(path)
    spec = loaded.spec
    assert spec.family == "unet3d" and spec.output == "regions" and spec.regions == ("WT", "TC", "ET")
    prov = spec.provenance
    assert len(prov["train_cases"]) == 3 and len(prov["val_cases"]) == 1
    assert not set(prov["train_cases"]) & set(prov["val_cases"])
    assert prov["epochs"] == 6 and set(prov["best_val_dice"]) >= {"WT", "TC", "ET"}
    assert prov["best_val_dice"] == result.best_dice and prov["best_epoch"] == result.best_epoch
    with torch.no_grad():
        y = loaded.network(torch.zeros(1, 4, 20, 24, 28))
    assert tuple(y.shape) == (1, 3, 20, 24, 28)


def test_resume_continues_epochs_and_optimiser(trained: tuple[Path, list, TrainResult], synth_dir: Path,
                                               tmp_path: Path) -> None:
    src, _, _ = trained
    out = tmp_path / "tiny.safetensors"
    for suffix in (".safetensors", ".train.safetensors", ".log.csv"):
        shutil.copy(src.with_name("tiny" + suffix), tmp_path / ("tiny" + suffix))
    resumed = train(_config(synth_dir, out, epochs=8, resume=str(out)))
    assert resumed.epochs == 8 and [h["epoch"] for h in resumed.history] == list(range(1, 9))
    rows = list(csv.DictReader((tmp_path / "tiny.log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    from safetensors import safe_open

    with safe_open(str(state_path(out)), "pt") as f:
        steps = f.get_tensor("opt.0.step")
        info = json.loads(f.metadata()["train"])
    assert float(steps[0]) == 8 * 4  # Adam's step count went on from 24
    assert info["epoch"] == 8
    assert load_checkpoint(out).spec.provenance["epochs"] == 8


def test_finetune_starts_from_weights_and_records_origin(trained: tuple[Path, list, TrainResult], synth_dir: Path,
                                                         tmp_path: Path) -> None:
    src, _, _ = trained
    out = tmp_path / "ft.safetensors"
    train(_config(synth_dir, out, epochs=1, iters_per_epoch=1, lr=1e-4, finetune=str(src), val_fraction=0.0))
    spec = load_checkpoint(out).spec
    assert spec.provenance["finetuned"][0]["from"] == str(src)
    assert spec.provenance["train_cases"]  # the original run's provenance is kept


def test_broken_cases_are_reported_one_by_one(synth_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    cases = sorted(p for p in data.iterdir() if p.is_dir())
    missing, moved = cases[0], cases[1]
    next(missing.glob("*_flair.nii.gz")).unlink()
    seg = next(moved.glob("*_seg.nii.gz"))
    img = nib.load(str(seg))
    aff = img.affine.copy()
    aff[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header), str(seg))
    samples, problems = ds.load_samples([data])
    assert len(samples) == 2
    assert len(problems) == 2
    text = {Path(p.source).name: p.reason for p in problems}
    assert "flair" in text[missing.name]
    assert "grid" in text[moved.name]
    result = train(_config(data, tmp_path / "m.safetensors", epochs=1, iters_per_epoch=1, val_fraction=0.5))
    assert sorted(Path(p.source).name for p in result.problems) == sorted([missing.name, moved.name])
    assert len(load_checkpoint(result.checkpoint).spec.provenance["skipped"]) == 2


def test_cancel_stops_training(synth_dir: Path, tmp_path: Path) -> None:
    token = CancelToken()

    def progress(done: int, total: int, msg: str) -> None:
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        train(_config(synth_dir, tmp_path / "c.safetensors"), on_progress=progress, cancel=token)


def test_cascade_trains_on_axial_patches(synth_dir: Path, tmp_path: Path) -> None:
    cfg = _config(synth_dir, tmp_path / "cas.safetensors", family="cascade", output_kind="labels",
                  arch={"kind": "input", "local_maps": 4, "global_maps": 4}, patch=(16, 16), epochs=1,
                  iters_per_epoch=2, class_balance=True, class_weighting=True)
    loaded = load_checkpoint(train(cfg).checkpoint)
    assert loaded.spec.family == "cascade" and loaded.spec.dims == 2 and loaded.spec.output == "labels"
    with torch.no_grad():
        assert tuple(loaded.network(torch.zeros(1, 4, 20, 18)).shape) == (1, 4, 20, 18)


def test_folds_partition_the_cases(synth_dir: Path) -> None:
    samples = [ds.Sample(f"c{i}", np.zeros((4, 2, 2, 2), np.float32), np.zeros((2, 2, 2), np.uint8))
               for i in range(7)]
    seen: list[str] = []
    for k in range(3):
        tr, va = split_cases(samples, _config(synth_dir, Path("x"), folds=3, fold=k))
        assert not {s.case_id for s in tr} & {s.case_id for s in va}
        assert len(tr) + len(va) == 7
        seen += [s.case_id for s in va]
    assert sorted(seen) == sorted(s.case_id for s in samples)


def test_patches_and_weights() -> None:
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[8:12, 8:12, 8:12] = 2
    lab[9:11, 9:11, 9:11] = 3
    img = np.ones((4, 20, 20, 20), np.float32)
    s = ds.Sample("a", img, lab)
    rng = np.random.default_rng(0)
    pi, pl = ds.sample_patch(s, (8, 8, 8), rng, p_tumour=1.0)
    assert pi.shape == (4, 8, 8, 8) and pl.shape == (8, 8, 8) and pl.any()
    pi, pl = ds.sample_patch(s, (8, 8), rng, p_tumour=1.0, class_balance=True)
    assert pi.shape == (4, 8, 8) and pl.any()
    w = class_weights([lab], 4)
    assert w[0] < w[2] < w[3] and w[1] == max(w)  # absent class 1 gets the largest weight
    assert np.isclose(np.mean(w), 1.0)
    down = ds.downsample_labels(lab, 2)
    assert down.shape == (10, 10, 10) and set(np.unique(down)) <= {0, 2, 3}


@pytest.mark.parametrize("family, arch, patch, adversarial", [
    ("unet2d", {"features": [4, 4, 8, 8, 16, 4]}, (32, 32), 0.1),
    ("segresnet", {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1]}, (32, 32, 32), 0.1),
])
def test_other_families_and_adversarial_term(synth_dir: Path, tmp_path: Path, family: str, arch: dict,
                                             patch: tuple, adversarial: float) -> None:
    cfg = _config(synth_dir, tmp_path / f"{family}.safetensors", family=family, arch=arch, patch=patch,
                  epochs=1, iters_per_epoch=2, adversarial=adversarial, val_fraction=0.0)
    loaded = load_checkpoint(train(cfg).checkpoint)
    assert loaded.spec.family == family and loaded.spec.provenance["adversarial"] == adversarial
    with torch.no_grad():
        y = loaded.network(torch.zeros(1, 4, *patch))
    assert tuple(y.shape) == (1, 3, *patch)


def test_nnunet_augmentation_keeps_labels_and_is_seeded() -> None:
    """The nnU-Net recipe changes the image, keeps label values (nearest), the shapes, and is seeded."""
    from napari_brats_seg.core.errors import BratsSegError
    from napari_brats_seg.core.training import data as ds

    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 32, 32, 32)).astype(np.float32)
    label = np.zeros((1, 32, 32, 32), dtype=np.float32)
    label[0, 10:20, 10:20, 10:20] = 2
    label[0, 13:17, 13:17, 13:17] = 4

    def run(seed: int) -> list[dict]:
        aug = ds.augmentation(3, affine_prob=0.5, seed=seed, recipe="nnunet")
        return [aug({"image": image.copy(), "label": label.copy()}) for _ in range(12)]

    a, b = run(1), run(1)
    changed = 0
    for x, y in zip(a, b):
        xi, xl = np.asarray(x["image"]), np.asarray(x["label"])
        assert xi.shape == image.shape and xl.shape == label.shape
        assert set(np.unique(xl)) <= {0.0, 2.0, 4.0}
        np.testing.assert_array_equal(xi, np.asarray(y["image"]))
        changed += not np.allclose(xi, image)
    assert changed >= 10
    with pytest.raises(BratsSegError, match="unknown augmentation"):
        ds.augmentation(3, recipe="heavy")


@pytest.mark.parametrize("keep", ["best", "last"])
def test_deep_supervision_checkpoint_keeps_best_or_last(synth_dir: Path, tmp_path: Path, keep: str) -> None:
    """A DynUNet with deep-supervision heads saves (it cannot be deep-copied); ``keep`` picks the weights."""
    out = tmp_path / "ds.safetensors"
    arch = {**TINY_UNET, "deep_supr_num": 1}
    result = train(_config(synth_dir, out, arch=arch, epochs=3, keep=keep))
    assert result.epochs == 3
    from safetensors.torch import load_file

    saved = load_file(str(out))
    last = {k[len("model."):]: v for k, v in load_file(str(state_path(out))).items() if k.startswith("model.")}
    same = all(torch.equal(saved[k], last[k]) for k in saved if k in last)
    best_epoch = load_checkpoint(out).spec.provenance["best_epoch"]
    assert load_checkpoint(out).spec.provenance["weights"] == ("last epoch" if keep == "last" else "best validation")
    if keep == "last" or best_epoch == 3:
        assert same
    else:
        assert not same


def test_best_weights_save_after_a_deep_supervision_training_step(tmp_path: Path) -> None:
    """DynUNet keeps its deep-supervision heads of the last training step (non-leaf tensors, which
    ``copy.deepcopy`` refuses); saving the best weights must neither copy nor keep them in the network."""
    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.unet3d import unet3d_spec
    from napari_brats_seg.core.training.loop import _save_with

    spec = unet3d_spec("tiny-ds", filters=[4, 8, 16], kernel_size=[[3, 3, 3]] * 3,
                       strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], upsample_kernel_size=[[2, 2, 2]] * 2,
                       deep_supervision=True, deep_supr_num=1, patch_size=(16, 16, 16))
    net = build_network(spec)
    net.train()
    net(torch.rand(1, 4, 16, 16, 16)).sum().backward()
    best = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _save_with(tmp_path / "b.safetensors", net, best, spec)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    saved = load_checkpoint(tmp_path / "b.safetensors").network.state_dict()
    assert all(not v.any() for k, v in saved.items() if v.is_floating_point())
