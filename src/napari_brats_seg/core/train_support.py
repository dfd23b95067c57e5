"""Pieces of the training loop: default specs, building and saving models, resume state, splits,
validation (predicted as ``predict`` does, scored on the case's grid), the CSV log and its plot, and
the adversarial term."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from . import data as ds
from .errors import BratsSegError, ModelError
from .labels import region_masks
from .models.spec import ModelSpec
from .progress import CancelToken, check

if TYPE_CHECKING:  # pragma: no cover
    from .train import TrainConfig

_LEAKY = ["leakyrelu", {"negative_slope": 0.01, "inplace": True}]


def default_spec(config: TrainConfig, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> ModelSpec:
    """The :class:`ModelSpec` of a new model of ``config.family`` (engineer "models"' spec builders),
    with ``config.arch`` overrides, the patch size and the training spacing.

    ``unet3d`` defaults to a compact 4-level DynUNet (16-128 filters, one deep-supervision head, no
    residual blocks) that trains on a CPU; the cascade to an InputCascadeCNN with 32/64 maps and
    4 classes.
    """
    from .models import cascade, unet2d, unet3d

    name = config.name or Path(config.output).stem
    kind = config.output_kind
    fam = config.family
    if fam == "unet3d":
        arch = {"filters": [16, 32, 64, 128], "kernel_size": [[3, 3, 3]] * 4,
                "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3, "upsample_kernel_size": [[2, 2, 2]] * 3,
                "res_block": False, "deep_supervision": True, "deep_supr_num": 1}
        arch.update(config.arch)
        spec = unet3d.unet3d_spec(name, output=kind, patch_size=tuple(config.patch), **arch)
    elif fam == "segresnet":
        spec = unet3d.segresnet_spec(name, **config.arch)
        spec.patch_size = tuple(config.patch)
        spec.provenance = {}
    elif fam == "cascade":
        arch = {"kind": "input", "local_maps": 32, "global_maps": 64, "n_classes": 4}
        arch.update(config.arch)
        spec = cascade.cascade_spec(name, patch_size=tuple(config.patch), **arch)
        spec.provenance = {}
    elif fam in unet2d.DEFAULT_ARCH:
        spec = unet2d.unet2d_spec(fam, name, output=kind, patch_size=tuple(config.patch), arch=config.arch)
    else:
        raise ModelError(f"training the {fam!r} family is not supported; use unet3d, segresnet, cascade, "
                         f"{', '.join(unet2d.DEFAULT_ARCH)}")
    if len(config.patch) != spec.dims:
        raise BratsSegError(f"family {fam} is {spec.dims}D: --patch needs {spec.dims} numbers, "
                            f"got {tuple(config.patch)}")
    spec.spacing = tuple(float(s) * config.factor for s in spacing)
    return spec


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """The network of ``spec``, built by the model registry."""
    from .models.families import build_network

    return build_network(spec)


def _read_checkpoint(path: str | Path) -> tuple[ModelSpec, dict]:
    from .models.checkpoint import load_checkpoint

    loaded = load_checkpoint(path)
    return loaded.spec, loaded.network.state_dict()


def state_path(out: str | Path) -> Path:
    """The resume file beside checkpoint ``out``: ``<stem>.train.safetensors``."""
    p = Path(out)
    if p.name.endswith(".train.safetensors"):
        return p
    return p.with_name(p.name.removesuffix(".safetensors") + ".train.safetensors")


def load_start(config: TrainConfig) -> tuple[ModelSpec, dict | None, dict]:
    """``(spec, initial weights or None, resume metadata)`` for a new, resumed or fine-tuned run."""
    if config.resume:
        from safetensors import safe_open

        sp = state_path(config.resume)
        if not sp.is_file():
            raise ModelError(f"{sp}: no resume state (written beside the checkpoint by brats-seg train)")
        with safe_open(str(sp), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
        spec = ModelSpec.from_json(meta["spec"])
        info = json.loads(meta["train"])
        opt = json.loads(meta["optimizer"])
        state: dict[int, dict] = {}
        for i, st in opt["state"].items():
            entry = {k: v for k, v in st.items() if not k.startswith("_")}
            for k in st["_tensors"]:
                t = tensors[f"opt.{i}.{k}"]
                entry[k] = t.reshape(()) if k in st["_scalars"] else t
            state[int(i)] = entry
        info["optimizer"] = {"state": state, "param_groups": opt["param_groups"]}
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        return spec, weights, info
    if config.finetune:
        spec, weights = _read_checkpoint(config.finetune)
        spec.name = config.name or spec.name
        return spec, weights, {}
    from .io import find_cases, read_case

    spacing = (1.0, 1.0, 1.0)
    try:
        first = find_cases(config.data[:1])
        if first:
            spacing = tuple(reversed(read_case(first[0]).spacing))  # (z,y,x) -> LPS model axes
    except BratsSegError:
        pass
    return default_spec(config, spacing), None, {}


def split_cases(samples: Sequence[ds.Sample], config: TrainConfig
                ) -> tuple[list[ds.Sample], list[ds.Sample]]:
    """Training and validation cases: explicit ids, else fold ``fold`` of ``folds`` (cases sorted by
    id, shuffled with a fixed seed, dealt round-robin), else the last ``val_fraction`` of that order."""
    order = sorted(samples, key=lambda s: s.case_id)
    perm = np.random.default_rng(12345).permutation(len(order))
    order = [order[i] for i in perm]
    if config.val_cases:
        unknown = set(config.val_cases) - {s.case_id for s in order}
        if unknown:
            raise BratsSegError(f"validation case(s) not in the data: {', '.join(sorted(unknown))}")
        val = [s for s in order if s.case_id in config.val_cases]
    elif config.folds:
        if not 0 <= config.fold < config.folds or config.folds > len(order):
            raise BratsSegError(f"fold {config.fold} of {config.folds} is impossible with {len(order)} cases")
        val = [s for i, s in enumerate(order) if i % config.folds == config.fold]
    else:
        n_val = int(round(config.val_fraction * len(order)))
        if config.val_fraction > 0 and len(order) > 1:
            n_val = max(n_val, 1)
        val = order[len(order) - n_val:] if n_val else []
    ids = {s.case_id for s in val}
    return [s for s in order if s.case_id not in ids], val


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (the BraTS convention)."""
    a, b = int(pred.sum()), int(gt.sum())
    if a + b == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / (a + b)


def predict_sample(network: torch.nn.Module, spec: ModelSpec, sample: ds.Sample, device: torch.device,
                   cancel: CancelToken | None = None) -> np.ndarray:
    """Labels of a prepared case on its own grid, the way :func:`~.inference.predict` makes them
    (padding, windows, overlap, restore, one decode; fp32, no TTA, no clean-up)."""
    from .inference import run_network, to_case_grid
    from .placement import pad_input

    if sample.placement is None:
        raise BratsSegError(f"sample {sample.case_id} has no placement (made by data.prepare_case)")
    x, placement = pad_input(sample.image, sample.placement, spec, self_tiling=spec.self_tiling)
    out = run_network(network, spec, x, placement, device=device, precision="fp32", cancel=cancel,
                      what=f"validation case {sample.case_id}")
    return to_case_grid(out, placement, spec)[0]


def case_dice(labels: np.ndarray, sample: ds.Sample) -> dict[str, float]:
    """Dice per region of case-grid ``labels`` against the sample's ground truth (background outside
    its ``truth_box``)."""
    if sample.truth is None:
        raise BratsSegError(f"sample {sample.case_id} kept no ground truth (load_samples(keep_truth=True))")
    pred, truth = region_masks(labels), region_masks(sample.truth)
    out = {}
    for r in ("WT", "TC", "ET"):
        a, b = int(pred[r].sum()), int(truth[r].sum())
        both = int(np.logical_and(pred[r][sample.truth_box], truth[r]).sum())
        out[r] = round(1.0 if a + b == 0 else 2.0 * both / (a + b), 4)
    return out


def validate(network: torch.nn.Module, spec: ModelSpec, samples: Sequence[ds.Sample],
             config: TrainConfig, cancel: CancelToken | None = None) -> dict:
    """Dice per region on each validation case, predicted as :func:`~.inference.predict` does and
    scored on the case's own grid.

    Returns ``{"cases": {id: {region: dice}}, "mean": {region: dice}}``.
    """
    was_training = network.training
    network.eval()
    per: dict[str, dict[str, float]] = {}
    try:
        for s in samples:
            check(cancel)
            per[s.case_id] = case_dice(predict_sample(network, spec, s, torch.device(config.device), cancel), s)
    finally:
        network.train(was_training)
    mean = {r: float(np.mean([c[r] for c in per.values()])) for r in ("WT", "TC", "ET")}
    return {"cases": per, "mean": mean}


def save_model(out: Path, network: Any, spec: ModelSpec) -> Path:
    """Write the checkpoint (engineer "models"' format: safetensors, spec JSON in metadata)."""
    from .models.checkpoint import save_checkpoint

    return save_checkpoint(out, network, spec)


def save_state(out: Path, network: torch.nn.Module, opt: torch.optim.Optimizer, info: dict,
               spec: ModelSpec) -> Path:
    """Write ``<out>.train.safetensors``: weights, optimiser state and progress (no pickles)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for k, v in network.state_dict().items():  # tied tensors (DynUNet's skip_layers) stored once
        key = (v.data_ptr(), tuple(v.shape), v.dtype)
        if key not in seen:
            seen.add(key)
            tensors[f"model.{k}"] = v.detach().contiguous()
    sd = opt.state_dict()
    ostate: dict[str, dict] = {}
    for i, st in sd["state"].items():
        entry: dict[str, Any] = {"_tensors": [], "_scalars": []}
        for k, v in st.items():
            if torch.is_tensor(v):
                entry["_tensors"].append(k)
                if v.ndim == 0:
                    entry["_scalars"].append(k)
                    v = v.reshape(1)
                tensors[f"opt.{i}.{k}"] = v.detach().contiguous()
            else:
                entry[k] = v
        ostate[str(i)] = entry
    meta = {"spec": spec.to_json(),
            "optimizer": json.dumps({"state": ostate, "param_groups": sd["param_groups"]}),
            "train": json.dumps(info, default=str)}
    sp = state_path(out)
    sp.parent.mkdir(parents=True, exist_ok=True)
    tmp = sp.with_name(f".{sp.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(sp)
    return sp


def write_log(out: Path, history: list[dict]) -> Path:
    """``<out>.log.csv``: one row per epoch."""
    path = out.with_name(out.name.removesuffix(".safetensors") + ".log.csv")
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

    path = out.with_name(out.name.removesuffix(".safetensors") + ".png")
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


class Adversary:
    """The adversarial (DCGAN-style) term of engineer "models"' :mod:`~.models.adversarial`: a
    discriminator tells expert from predicted maps (given the images); the segmenter gets
    ``weight * g_loss``."""

    def __init__(self, spec: ModelSpec, weight: float, device: torch.device, lr: float = 2e-4) -> None:
        from .models.adversarial import Discriminator

        self.n_out = len(spec.regions) if spec.output == "regions" else len(spec.classes)
        self.disc = Discriminator(len(spec.channels) + self.n_out, spatial_dims=spec.dims).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))
        self.weight, self.output = weight, spec.output
        self._d_loss: torch.Tensor | None = None

    def generator_term(self, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``weight * g_loss`` (and keeps ``d_loss`` for :meth:`step`)."""
        from .models.adversarial import adversarial_losses

        if self.output == "regions":
            probs, truth = torch.sigmoid(logits), y.float()
        else:
            probs = torch.softmax(logits, 1)
            truth = F.one_hot(y[:, 0].long(), self.n_out).movedim(-1, 1).float()
        g_loss, self._d_loss = adversarial_losses(self.disc, x, probs, truth)
        return self.weight * g_loss

    def step(self) -> float:
        """One discriminator update with the last ``d_loss``; returns it."""
        assert self._d_loss is not None
        self.opt.zero_grad(set_to_none=True)
        self._d_loss.backward()
        self.opt.step()
        out, self._d_loss = float(self._d_loss), None
        return out
