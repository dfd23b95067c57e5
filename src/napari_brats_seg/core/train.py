"""Training loops: single process, or DistributedDataParallel under ``torchrun`` (gloo on CPU).

:func:`train` reads cases (reporting broken ones), splits them (validation fraction or k-fold),
samples patches around tumour and brain, augments them, optimises the model's loss (Dice + BCE for
regions, Dice + CE for labels, weighted CE for the cascade), validates each validation case as
``predict`` segments it (scored on the case's own grid), stops early, and writes a safetensors
checkpoint whose :class:`~.models.spec.ModelSpec` records the provenance. Beside the checkpoint it
writes ``<out>.train.safetensors`` (weights, optimiser state and epoch, to resume), ``<out>.log.csv``
and ``<out>.png`` (loss and validation Dice per region).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data as ds
from .errors import BratsSegError, ModelError
from .models.spec import ModelSpec
from .progress import CancelToken, ProgressCallback, check, report
from .train_support import (
    build_model,
    default_spec,
    load_start,
    plot_log,
    save_model,
    save_state,
    split_cases,
    validate,
    write_log,
)


@dataclass
class TrainConfig:
    """Everything a training run needs (the CLI maps its options one to one).

    Attributes
    ----------
    data
        Case folders or folders of cases (any layout the core reads).
    output
        Checkpoint path (``.safetensors``).
    family
        Registry family (``unet3d``, ``segresnet``, ``cascade``, ``unet2d``, ...).
    output_kind
        ``"regions"`` (WT/TC/ET sigmoid) or ``"labels"`` (softmax classes).
    arch
        Overrides of the family's default constructor arguments.
    name
        Model name recorded in the checkpoint (default: the output's stem).
    factor
        Integer downsampling of the files' grid (2: train 1 mm data at 2 mm); recorded as ``spacing``.
    patch
        Patch size (3 numbers for 3D, 2 for 2D families).
    epochs, iters_per_epoch, batch_size, lr, weight_decay
        Optimisation (AdamW, cosine schedule over ``epochs``).
    val_fraction, folds, fold, val_cases
        Validation split: explicit case ids, else fold ``fold`` of ``folds``, else a fraction.
    val_every, patience
        Validate every n epochs; stop after ``patience`` validations without improvement (0: never).
    max_minutes
        Stop after this wall time (checked between epochs); 0 for no limit.
    amp
        bf16 autocast (CPU with AMX/AVX-512, or CUDA).
    p_tumour, class_balance, class_weighting, affine_prob
        Patch sampling and augmentation.
    adversarial
        Weight of the adversarial (DCGAN-style) term; 0 disables.
    resume, finetune
        Continue a run (weights, optimiser, epoch) or start from a checkpoint's weights.
    seed, threads, device
        Reproducibility and resources.
    """

    data: list[str]
    output: str
    family: str = "unet3d"
    output_kind: str = "regions"
    arch: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    factor: int = 1
    patch: tuple[int, ...] = (64, 64, 64)
    epochs: int = 50
    iters_per_epoch: int = 20
    batch_size: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    folds: int = 0
    fold: int = 0
    val_cases: list[str] = field(default_factory=list)
    val_every: int = 1
    patience: int = 0
    max_minutes: float = 0.0
    amp: bool = False
    p_tumour: float = 0.67
    class_balance: bool = False
    class_weighting: bool = False
    affine_prob: float = 0.2
    adversarial: float = 0.0
    resume: str | None = None
    finetune: str | None = None
    seed: int = 0
    threads: int = 0
    device: str = "cpu"


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _start(config: TrainConfig) -> tuple[int, int]:
    """``(rank, world size)``; threads set and the gloo process group started under ``torchrun``."""
    rank, world = _dist_info()
    if config.threads:
        torch.set_num_threads(config.threads)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    return rank, world


def _dist_mean(value: float, world: int) -> float:
    """The mean of ``value`` over the processes (itself in a single process)."""
    if world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value])
    dist.all_reduce(t)
    return float(t) / world


def _dist_flag(flag: bool, world: int) -> bool:
    """Rank 0's ``flag`` on every process, so that all of them stop after the same epoch."""
    if world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0])
    dist.broadcast(t, 0)
    return bool(t)


@dataclass
class _Progress:
    """Where a run stands: epochs done, the history, the best validation score and its weights."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = -1.0
    bad: int = 0
    best_state: dict | None = None
    prior_seconds: float = 0.0


def _read_data(config: TrainConfig, spec: ModelSpec, cancel: CancelToken | None, problems: list | None
               ) -> tuple[list[ds.Sample], list[ds.Sample], list[ds.Sample], list[ds.Problem]]:
    """``(samples, training ones, validation ones, skipped cases)``, prepared for ``spec``."""
    samples, probs = ds.load_samples(config.data, spec=spec, keep_truth=True, cancel=cancel)
    if problems is not None:
        problems.extend(probs)
    if not samples:
        why = "; ".join(str(p) for p in probs) or "no cases found"
        raise BratsSegError(f"no usable training case ({why})")
    train_s, val_s = split_cases(samples, config)
    if not train_s:
        raise BratsSegError("the validation split leaves no training case")
    return samples, train_s, val_s, probs


def _build(config: TrainConfig, spec: ModelSpec, start_state: dict | None, train_s: Sequence[ds.Sample],
           world: int) -> tuple[torch.nn.Module, torch.nn.Module, Any, torch.optim.Optimizer]:
    """``(network, model to train (DDP-wrapped under torchrun), loss, optimiser)``."""
    from .losses import build_loss, class_weights

    weights = None
    if config.class_weighting and spec.output == "labels":
        weights = class_weights([ds.class_channels(s.label, spec.classes) for s in train_s], len(spec.classes))
    loss_fn = build_loss(spec.output, weights=weights, dice_weight=0.0 if spec.family == "cascade" else 1.0)
    network = build_model(spec)
    if start_state is not None:
        missing = network.load_state_dict(start_state, strict=False)
        if missing.missing_keys and not config.resume:  # resume files store tied tensors once
            raise ModelError(f"checkpoint lacks weights for {missing.missing_keys[:3]}...")
    network.to(torch.device(config.device))
    model: torch.nn.Module = network
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(network)
    params = [p for p in network.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return network, model, loss_fn, opt


def _resume(config: TrainConfig, meta: dict, opt: torch.optim.Optimizer, out: Path) -> _Progress:
    """The progress of a resumed run (optimiser state loaded), or a fresh one."""
    if not config.resume:
        return _Progress()
    opt.load_state_dict(meta["optimizer"])
    state = _Progress(meta["epoch"], meta["history"], meta.get("best", -1.0), meta.get("bad", 0),
                      prior_seconds=meta.get("seconds", 0.0))
    if out.is_file() and state.best >= 0:  # the checkpoint holds the best weights so far
        from .train_support import _read_checkpoint

        state.best_state = _read_checkpoint(out)[1]
    return state


def _lr_at(config: TrainConfig, epoch: int) -> float:
    """Cosine from ``lr`` to 2 % of it over ``config.epochs``."""
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(epoch / max(config.epochs, 1), 1.0))))


def _batch(train_s: Sequence[ds.Sample], config: TrainConfig, spec: ModelSpec, rng: np.random.Generator,
           aug: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented batch of patches and their targets."""
    regions = tuple(spec.regions) if spec.output == "regions" else ("WT", "TC", "ET")
    xb, yb = [], []
    for _ in range(config.batch_size):
        s = train_s[rng.integers(len(train_s))]
        img, lab = ds.sample_patch(s, config.patch, rng, p_tumour=config.p_tumour, class_balance=config.class_balance)
        d = aug({"image": img, "label": lab[None]})
        xb.append(torch.as_tensor(np.asarray(d["image"]), dtype=torch.float32))
        lab_aug = np.asarray(d["label"])[0].round().astype(np.uint8)
        yb.append(torch.from_numpy(ds.labels_to_target(lab_aug, spec.output, regions, spec.classes)))
    return torch.stack(xb).to(device), torch.stack(yb).to(device)


def _step(model: torch.nn.Module, loss_fn: Any, opt: torch.optim.Optimizer, adv: Any, x: torch.Tensor,
          y: torch.Tensor, amp: bool) -> float:
    """One optimisation step (deep-supervision heads weighted 1, 1/2, ...); returns the loss."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out_t = model(x)
    if out_t.ndim == x.ndim + 1:  # deep supervision: heads stacked on dim 1
        heads = out_t.unbind(1)
        wts = [0.5 ** i for i in range(len(heads))]
        loss = sum(w * loss_fn(h.float(), y) for w, h in zip(wts, heads)) / sum(wts)
        logits = heads[0]
    else:
        logits = out_t
        loss = loss_fn(logits.float(), y)
    if adv is not None:
        loss = loss + adv.generator_term(x, logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if adv is not None:
        adv.step()
    return float(loss.detach())


def _validate_into(row: dict[str, Any], state: _Progress, network: torch.nn.Module, spec: ModelSpec,
                   val_s: Sequence[ds.Sample], config: TrainConfig, cancel: CancelToken | None) -> bool:
    """Validate, record the scores in ``row`` and the best weights in ``state``; True to stop early."""
    scores = validate(network, spec, val_s, config, cancel=cancel)
    row.update({f"val_dice_{r}": v for r, v in scores["mean"].items()})
    row["val_dice_mean"] = float(np.mean(list(scores["mean"].values())))
    row["val_cases"] = scores["cases"]
    if row["val_dice_mean"] > state.best:
        state.best, state.bad = row["val_dice_mean"], 0
        state.best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    else:
        state.bad += 1
    return bool(config.patience) and state.bad >= config.patience


def train(config: TrainConfig, *, on_progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None, problems: list | None = None) -> Path:
    """Train a model as ``config`` says and write its checkpoint.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process samples its own patches and gradients are
    averaged by DistributedDataParallel (gloo); rank 0 validates and writes the files. Validation
    predicts each validation case as :func:`~.inference.predict` does and scores it on the case's
    own grid (:func:`~.train_support.validate`).

    Parameters
    ----------
    on_progress
        ``(iteration, total_iterations, message)``, called after every iteration.
    cancel
        Checked between iterations; cancelling raises :class:`~.errors.Cancelled` (rank 0's files
        of the last completed epoch stay valid).
    problems
        A list that receives a :class:`~.data.Problem` per skipped case.

    Returns
    -------
    Path
        The checkpoint written.

    Raises
    ------
    BratsSegError
        No usable case, a bad split, an unknown family, an incompatible checkpoint.
    """
    rank, world = _start(config)
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng(config.seed + 1000 * rank)
    t0, out, device = time.time(), Path(config.output), torch.device(config.device)
    spec, start_state, start_meta = load_start(config)
    samples, train_s, val_s, probs = _read_data(config, spec, cancel, problems)
    network, model, loss_fn, opt = _build(config, spec, start_state, train_s, world)
    state = _resume(config, start_meta, opt, out)
    adv = None
    if config.adversarial > 0:
        from .train_support import Adversary

        adv = Adversary(spec, config.adversarial, device, lr=config.lr)
    aug = ds.augmentation(spec.dims, affine_prob=config.affine_prob, seed=config.seed + rank)
    total = config.epochs * config.iters_per_epoch
    for epoch in range(state.epoch, config.epochs):
        model.train()
        for group in opt.param_groups:
            group["lr"] = _lr_at(config, epoch)
        losses = []
        for it in range(config.iters_per_epoch):
            check(cancel)
            x, y = _batch(train_s, config, spec, rng, aug, device)
            losses.append(_step(model, loss_fn, opt, adv, x, y, config.amp))
            report(on_progress, epoch * config.iters_per_epoch + it + 1, total,
                   f"epoch {epoch + 1}/{config.epochs} loss {np.mean(losses):.4f}")
        row: dict[str, Any] = {"epoch": epoch + 1, "seconds": round(time.time() - t0 + state.prior_seconds, 1),
                               "lr": opt.param_groups[0]["lr"], "train_loss": _dist_mean(float(np.mean(losses)), world)}
        out_of_time = _dist_flag(bool(config.max_minutes) and time.time() - t0 > 60 * config.max_minutes, world)
        last = out_of_time or epoch + 1 == config.epochs
        stop = False
        if rank == 0 and val_s and ((epoch + 1) % config.val_every == 0 or last):
            stop = _validate_into(row, state, network, spec, val_s, config, cancel)
        state.history.append(row)
        if rank == 0:
            _write_epoch(out, config, spec, network, opt, state, (samples, train_s, val_s, probs),
                         time.time() - t0 + state.prior_seconds)
        if _dist_flag(stop or out_of_time, world):
            break
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return out


def _write_epoch(out: Path, config: TrainConfig, spec: ModelSpec, network: torch.nn.Module,
                 opt: torch.optim.Optimizer, state: _Progress, data: tuple, elapsed: float) -> None:
    """Rank 0's files after an epoch: resume state, the best checkpoint, the CSV log and its plot."""
    spec.provenance = _provenance(config, spec, *data, state.history, state.best, elapsed)
    save_state(out, network, opt, {"epoch": state.history[-1]["epoch"],
                                   "history": state.history, "best": state.best, "bad": state.bad,
                                   "seconds": elapsed, "config": asdict(config)}, spec)
    save_model(out, network if state.best_state is None else _copy_with(network, state.best_state), spec)
    write_log(out, state.history)
    plot_log(out, state.history)


def _copy_with(network: torch.nn.Module, state: dict) -> torch.nn.Module:
    """A copy of ``network`` holding ``state`` (the best weights), for saving."""
    import copy

    net = copy.deepcopy(network)
    net.load_state_dict(state)
    return net


def _provenance(config: TrainConfig, spec: ModelSpec, samples: Sequence[ds.Sample],
                train_s: Sequence[ds.Sample], val_s: Sequence[ds.Sample], probs: Sequence[Any],
                history: list[dict], best: float, seconds: float) -> dict:
    last_val = next((h for h in reversed(history) if "val_dice_mean" in h), None)
    best_row = max((h for h in history if "val_dice_mean" in h), key=lambda h: h["val_dice_mean"],
                   default=None)
    prov = dict(spec.provenance) if config.finetune else {}
    entry = {
        "trained_with": "brats-seg train",
        "data": [str(d) for d in config.data],
        "train_cases": [s.case_id for s in train_s],
        "val_cases": [s.case_id for s in val_s],
        "skipped": [str(p) for p in probs],
        "split": ({"folds": config.folds, "fold": config.fold} if config.folds else
                  {"val_cases": config.val_cases} if config.val_cases else {"val_fraction": config.val_fraction}),
        "epochs": len(history), "iters_per_epoch": config.iters_per_epoch, "batch_size": config.batch_size,
        "patch": list(config.patch), "factor": config.factor, "lr": config.lr, "amp": config.amp,
        "adversarial": config.adversarial, "seed": config.seed,
        "seconds": round(seconds, 1),
        "world_size": _dist_info()[1],
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
                   f"torch {torch.__version__}".strip(),
        "best_val_dice": (None if best_row is None else
                          {k[9:]: round(v, 4) for k, v in best_row.items() if k.startswith("val_dice_")}),
        "best_epoch": None if best_row is None else best_row["epoch"],
        "last_val_dice": (None if last_val is None else
                          {k[9:]: round(v, 4) for k, v in last_val.items() if k.startswith("val_dice_")}),
        "val_resolution": "the case grid, predicted as predict() does",
    }
    if config.finetune:
        prov.setdefault("finetuned", []).append({"from": config.finetune, **entry})
        return prov
    return entry


def config_from_json(text: str) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :func:`dataclasses.asdict` JSON."""
    d = json.loads(text)
    d["patch"] = tuple(d["patch"])
    return TrainConfig(**d)


__all__ = ["TrainConfig", "train", "default_spec", "config_from_json"]
