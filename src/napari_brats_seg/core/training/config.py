"""What a training run is asked to do: :class:`TrainConfig`, and the spec of a new model from it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BratsSegError, ModelError
from ..models.spec import ModelSpec


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
    keep
        Which weights the checkpoint holds: ``"best"`` (the best validation so far) or ``"last"`` (the
        latest epoch: no selection on the cases it is scored on, for cross-validation).
    max_minutes
        Stop after this wall time (checked between epochs); 0 for no limit.
    amp
        bf16 autocast (CPU with AMX/AVX-512, or CUDA).
    p_tumour, class_balance, class_weighting, affine_prob
        Patch sampling and augmentation.
    augment
        Augmentation recipe: ``"basic"`` (the shipped models') or ``"nnunet"`` (see
        :func:`.data.augmentation`).
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
    keep: str = "best"
    max_minutes: float = 0.0
    amp: bool = False
    p_tumour: float = 0.67
    class_balance: bool = False
    class_weighting: bool = False
    affine_prob: float = 0.2
    augment: str = "basic"
    adversarial: float = 0.0
    resume: str | None = None
    finetune: str | None = None
    seed: int = 0
    threads: int = 0
    device: str = "cpu"


def config_from_json(text: str) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :func:`dataclasses.asdict` JSON."""
    d = json.loads(text)
    d["patch"] = tuple(d["patch"])
    return TrainConfig(**d)


def default_spec(config: TrainConfig, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> ModelSpec:
    """The :class:`ModelSpec` of a new model of ``config.family`` (engineer "models"' spec builders),
    with ``config.arch`` overrides, the patch size and the training spacing.

    ``unet3d`` defaults to a compact 4-level DynUNet (16-128 filters, one deep-supervision head, no
    residual blocks) that trains on a CPU; the cascade to an InputCascadeCNN with 32/64 maps and
    4 classes.
    """
    from ..models import cascade, unet2d, unet3d

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
