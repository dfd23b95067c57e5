"""The training loop: single process, or DistributedDataParallel under ``torchrun`` (gloo on CPU).

:func:`train` reads cases (reporting broken ones), splits them (validation fraction or k-fold),
samples patches around tumour and brain, augments them, optimises the model's loss (Dice + BCE for
regions, Dice + CE for labels, weighted CE for the cascade), validates each validation case as
``predict`` segments it (scored on the case's own grid), stops early, and writes a safetensors
checkpoint whose :class:`~napari_brats_seg.core.models.spec.ModelSpec` records the provenance. Beside
the checkpoint it writes ``<out>.train.safetensors`` (weights, optimiser state and epoch, to resume),
``<out>.log.csv`` and ``<out>.png`` (loss and validation Dice per region). It returns a
:class:`~.report.TrainResult`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BratsSegError, ModelError
from ..models.spec import ModelSpec
from ..progress import CancelToken, ProgressCallback, check, report
from . import data as ds
from . import distributed as dist
from .config import TrainConfig
from .report import TrainResult, plot_log, provenance, result_of, save_model, write_log
from .resume import Progress, load_start, resume_progress, save_state
from .split import split_cases
from .validation import validate


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """The network of ``spec``, built by its model family."""
    from ..models.families import build_network

    return build_network(spec)


def _read_data(config: TrainConfig, spec: ModelSpec, cancel: CancelToken | None
               ) -> tuple[list[ds.Sample], list[ds.Sample], list[ds.Sample], list[ds.Problem]]:
    """``(samples, training ones, validation ones, skipped cases)``, prepared for ``spec``."""
    samples, probs = ds.load_samples(config.data, spec=spec, keep_truth=True, cancel=cancel)
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
    from ..losses import build_loss, class_weights

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
    model = dist.wrap(network, world)
    params = [p for p in network.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return network, model, loss_fn, opt


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


def _validate_into(row: dict[str, Any], state: Progress, network: torch.nn.Module, spec: ModelSpec,
                   val_s: Sequence[ds.Sample], config: TrainConfig, cancel: CancelToken | None) -> bool:
    """Validate, record the scores in ``row`` and the best weights in ``state``; True to stop early."""
    scores = validate(network, spec, val_s, config, cancel=cancel)
    row.update({f"val_dice_{r}": v for r, v in scores["mean"].items()})
    row["val_dice_mean"] = float(np.mean(list(scores["mean"].values())))
    row["val_cases"] = scores["cases"]
    if row["val_dice_mean"] > state.best:
        state.best, state.bad = row["val_dice_mean"], 0
        if config.keep != "last":  # the checkpoint holds these weights; with "last" nothing needs them
            state.best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    else:
        state.bad += 1
    return bool(config.patience) and state.bad >= config.patience


def train(config: TrainConfig, *, on_progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None) -> TrainResult:
    """Train a model as ``config`` says and write its checkpoint.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process samples its own patches and gradients are
    averaged by DistributedDataParallel (gloo); rank 0 validates and writes the files. Validation
    predicts each validation case as :func:`~napari_brats_seg.core.inference.predict` does and scores
    it on the case's own grid (:func:`~.validation.validate`).

    Parameters
    ----------
    on_progress
        ``(iteration, total_iterations, message)``, called after every iteration.
    cancel
        Checked between iterations; cancelling raises :class:`~napari_brats_seg.core.errors.Cancelled`
        (rank 0's files of the last completed epoch stay valid).

    Returns
    -------
    TrainResult
        The checkpoint and the files beside it, the best and last validation Dice, the history and
        the skipped cases.

    Raises
    ------
    BratsSegError
        No usable case, a bad split, an unknown family, an incompatible checkpoint.
    """
    rank, world = dist.start(config.threads)
    torch.manual_seed(config.seed + rank)
    t0, out = time.time(), Path(config.output)
    spec, start_state, start_meta = load_start(config)
    data = _read_data(config, spec, cancel)
    network, model, loss_fn, opt = _build(config, spec, start_state, data[1], world)
    state = resume_progress(config, start_meta, opt, out)
    run = _Run(config, spec, network, model, loss_fn, opt, _adversary(config, spec), rank, world, t0,
               np.random.default_rng(config.seed + 1000 * rank),
               ds.augmentation(spec.dims, affine_prob=config.affine_prob, seed=config.seed + rank,
                               recipe=config.augment))
    for epoch in range(state.epoch, config.epochs):
        stop = _epoch(run, epoch, state, data, on_progress, cancel)
        if rank == 0:
            _write_epoch(out, config, spec, network, opt, state, data, time.time() - t0 + state.prior_seconds)
        if dist.rank0_flag(stop, world):
            break
    dist.finish(world)
    return result_of(out, state.history, time.time() - t0 + state.prior_seconds, data[3])


def _adversary(config: TrainConfig, spec: ModelSpec) -> Any:
    """The adversarial term when ``config.adversarial`` > 0, else None."""
    if config.adversarial <= 0:
        return None
    from .adversary import Adversary

    return Adversary(spec, config.adversarial, torch.device(config.device), lr=config.lr)


@dataclass
class _Run:
    """What every epoch of a run uses."""

    config: TrainConfig
    spec: ModelSpec
    network: torch.nn.Module
    model: torch.nn.Module
    loss_fn: Any
    opt: torch.optim.Optimizer
    adv: Any
    rank: int
    world: int
    t0: float
    rng: np.random.Generator
    aug: Any


def _epoch(run: _Run, epoch: int, state: Progress, data: tuple, on_progress: ProgressCallback | None,
           cancel: CancelToken | None) -> bool:
    """One epoch: its iterations, then validation on rank 0 when due; True when the run should stop."""
    config, spec = run.config, run.spec
    _, train_s, val_s, _ = data
    device = torch.device(config.device)
    run.model.train()
    for group in run.opt.param_groups:
        group["lr"] = _lr_at(config, epoch)
    losses = []
    total = config.epochs * config.iters_per_epoch
    for it in range(config.iters_per_epoch):
        check(cancel)
        x, y = _batch(train_s, config, spec, run.rng, run.aug, device)
        losses.append(_step(run.model, run.loss_fn, run.opt, run.adv, x, y, config.amp))
        report(on_progress, epoch * config.iters_per_epoch + it + 1, total,
               f"epoch {epoch + 1}/{config.epochs} loss {np.mean(losses):.4f}")
    row: dict[str, Any] = {"epoch": epoch + 1, "seconds": round(time.time() - run.t0 + state.prior_seconds, 1),
                           "lr": run.opt.param_groups[0]["lr"],
                           "train_loss": dist.mean(float(np.mean(losses)), run.world)}
    out_of_time = dist.rank0_flag(bool(config.max_minutes) and time.time() - run.t0 > 60 * config.max_minutes,
                                  run.world)
    last = out_of_time or epoch + 1 == config.epochs
    stop = False
    if run.rank == 0 and val_s and ((epoch + 1) % config.val_every == 0 or last):
        stop = _validate_into(row, state, run.network, spec, val_s, config, cancel)
    state.history.append(row)
    return stop or out_of_time


def _write_epoch(out: Path, config: TrainConfig, spec: ModelSpec, network: torch.nn.Module,
                 opt: torch.optim.Optimizer, state: Progress, data: tuple, elapsed: float) -> None:
    """Rank 0's files after an epoch: resume state, the best checkpoint, the CSV log and its plot."""
    spec.provenance = provenance(config, spec, *data, state.history, state.best, elapsed)
    save_state(out, network, opt, {"epoch": state.history[-1]["epoch"],
                                   "history": state.history, "best": state.best, "bad": state.bad,
                                   "seconds": elapsed, "config": asdict(config)}, spec)
    if config.keep == "last" or state.best_state is None:
        save_model(out, network, spec)
    else:
        _save_with(out, network, state.best_state, spec)
    write_log(out, state.history)
    plot_log(out, state.history)


def _save_with(out: Path, network: torch.nn.Module, weights: dict, spec: ModelSpec) -> None:
    """Save ``network`` holding ``weights`` (the best so far), then put its own weights back.

    No deep copy: a network keeping tensors of its last forward pass (MONAI's DynUNet with deep
    supervision) cannot be deep-copied.
    """
    current = {k: v.detach().clone() for k, v in network.state_dict().items()}
    network.load_state_dict(weights)
    try:
        save_model(out, network, spec)
    finally:
        network.load_state_dict(current)
