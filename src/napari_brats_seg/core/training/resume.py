"""Where a run starts and how it resumes: the start spec and weights, the resume file, the progress so far."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import BratsSegError, ModelError
from ..models.spec import ModelSpec
from .config import TrainConfig, default_spec


def read_checkpoint(path: str | Path) -> tuple[ModelSpec, dict]:
    """``(spec, state dict)`` of a checkpoint."""
    from ..models.checkpoint import load_checkpoint

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
        spec, weights = read_checkpoint(config.finetune)
        spec.name = config.name or spec.name
        return spec, weights, {}
    from ..io import find_cases, read_case

    spacing = (1.0, 1.0, 1.0)
    try:
        first = find_cases(config.data[:1])
        if first:
            spacing = tuple(reversed(read_case(first[0]).spacing))  # (z,y,x) -> LPS model axes
    except BratsSegError:
        pass
    return default_spec(config, spacing), None, {}


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


@dataclass
class Progress:
    """Where a run stands: epochs done, the history, the best validation score and its weights."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = -1.0
    bad: int = 0
    best_state: dict | None = None
    prior_seconds: float = 0.0


def resume_progress(config: TrainConfig, meta: dict, opt: torch.optim.Optimizer, out: Path) -> Progress:
    """The progress of a resumed run (optimiser state loaded), or a fresh one."""
    if not config.resume:
        return Progress()
    opt.load_state_dict(meta["optimizer"])
    state = Progress(meta["epoch"], meta["history"], meta.get("best", -1.0), meta.get("bad", 0),
                      prior_seconds=meta.get("seconds", 0.0))
    if out.is_file() and state.best >= 0 and config.keep != "last":  # the checkpoint holds the best weights so far
        state.best_state = read_checkpoint(out)[1]
    return state
