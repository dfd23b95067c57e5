"""What a run leaves: the checkpoint and its provenance, the CSV log, its plot, and :class:`TrainResult`."""

from __future__ import annotations

import csv
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..models.spec import ModelSpec
from . import data as ds
from .distributed import rank_world

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig


@dataclass
class TrainResult:
    """What :func:`~.loop.train` did.

    Attributes
    ----------
    checkpoint
        The checkpoint written (the best validated weights, else the last ones).
    state, log, plot
        The resume file, the CSV log and its plot beside it (written by rank 0).
    epochs
        Epochs in the history (a resumed run counts the earlier ones).
    seconds
        Training wall time, earlier runs of a resumed one included.
    best_dice, best_epoch
        Validation Dice per region (and ``mean``) of the best validated epoch, and that epoch; None
        without validation.
    last_dice
        The same for the last validated epoch.
    history
        One row per epoch (``epoch``, ``seconds``, ``lr``, ``train_loss``, ``val_dice_*``).
    problems
        One :class:`~.data.Problem` per skipped case.
    """

    checkpoint: Path
    state: Path
    log: Path
    plot: Path
    epochs: int
    seconds: float
    best_dice: dict[str, float] | None
    best_epoch: int | None
    last_dice: dict[str, float] | None
    history: list[dict] = field(default_factory=list)
    problems: list[ds.Problem] = field(default_factory=list)


def _dice_of(row: dict | None) -> dict[str, float] | None:
    """The ``val_dice_*`` scores of a history row by region (and ``mean``), rounded."""
    if row is None:
        return None
    return {k[9:]: round(v, 4) for k, v in row.items() if k.startswith("val_dice_")}


def result_of(out: Path, history: list[dict], seconds: float, problems: Sequence[ds.Problem]) -> TrainResult:
    """The :class:`TrainResult` of a run that wrote ``out`` with ``history``."""
    from .resume import state_path

    validated = [h for h in history if "val_dice_mean" in h]
    best_row = max(validated, key=lambda h: h["val_dice_mean"], default=None)
    return TrainResult(checkpoint=out, state=state_path(out), log=log_path(out), plot=plot_path(out),
                       epochs=len(history), seconds=round(seconds, 1), best_dice=_dice_of(best_row),
                       best_epoch=None if best_row is None else best_row["epoch"],
                       last_dice=_dice_of(validated[-1] if validated else None), history=list(history),
                       problems=list(problems))


def log_path(out: Path) -> Path:
    """``<out>.log.csv``."""
    return out.with_name(out.name.removesuffix(".safetensors") + ".log.csv")


def plot_path(out: Path) -> Path:
    """``<out>.png``."""
    return out.with_name(out.name.removesuffix(".safetensors") + ".png")


def save_model(out: Path, network: Any, spec: ModelSpec) -> Path:
    """Write the checkpoint (engineer "models"' format: safetensors, spec JSON in metadata)."""
    from ..models.checkpoint import save_checkpoint

    return save_checkpoint(out, network, spec)


def write_log(out: Path, history: list[dict]) -> Path:
    """``<out>.log.csv``: one row per epoch."""
    path = log_path(out)
    cols = ["epoch", "seconds", "lr", "train_loss", "val_dice_WT", "val_dice_TC", "val_dice_ET", "val_dice_mean"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, "") for k in cols})
    return path


def plot_log(out: Path, history: list[dict]) -> Path | None:
    """``<out>.png``: training loss and validation Dice per region against epochs (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = plot_path(out)
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend()
    for r in ("WT", "TC", "ET"):
        pts = [(h["epoch"], h[f"val_dice_{r}"]) for h in history if f"val_dice_{r}" in h]
        if pts:
            b.plot(*zip(*pts), marker="o", label=r)
    b.set_xlabel("epoch"), b.set_ylabel("validation Dice"), b.set_ylim(0, 1)
    if b.lines:
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def provenance(config: TrainConfig, spec: ModelSpec, samples: Sequence[ds.Sample],
                train_s: Sequence[ds.Sample], val_s: Sequence[ds.Sample], probs: Sequence[Any],
                history: list[dict], best: float, seconds: float) -> dict:
    """The provenance a run records in its checkpoint's spec (a fine-tune appends to the original's)."""
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
        "adversarial": config.adversarial, "augment": config.augment, "seed": config.seed,
        "weights": "last epoch" if config.keep == "last" else "best validation",
        "seconds": round(seconds, 1),
        "world_size": rank_world()[1],
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
                   f"torch {torch.__version__}".strip(),
        "best_val_dice": _dice_of(best_row),
        "best_epoch": None if best_row is None else best_row["epoch"],
        "last_val_dice": _dice_of(last_val),
        "val_resolution": "the case grid, predicted as predict() does",
    }
    if config.finetune:
        prov.setdefault("finetuned", []).append({"from": config.finetune, **entry})
        return prov
    return entry
