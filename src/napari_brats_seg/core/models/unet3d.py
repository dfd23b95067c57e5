"""3D encoder-decoder families: ``unet3d`` (Isensee-style DynUNet) and ``segresnet`` (MONAI SegResNet).

``unet3d`` follows Isensee et al. 2017/2018 (BraTS 2017 and "No New-Net"): a U-Net with residual
context blocks, instance normalisation, leaky ReLU (slope 0.01) and deep supervision while training,
built from :class:`monai.networks.nets.DynUNet`. In ``train()`` mode DynUNet returns the main and the
deep-supervision outputs stacked on dim 1 ``(N, 1 + deep_supr_num, K, *S)``; in ``eval()`` mode only
the main output ``(N, K, *S)``.

``segresnet`` is :class:`monai.networks.nets.SegResNet` with the configuration of MONAI's
``brats_mri_segmentation`` bundle (Myronenko 2018, without the VAE branch): channel order T1c, T1, T2,
FLAIR, three sigmoid outputs TC, WT, ET, inputs divisible by 8.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .padding import build_padded
from .spec import ModelSpec, output_head

#: Isensee-style defaults of :func:`unet3d_spec` (5 levels, 4 down-samplings by 2).
UNET3D_DEFAULTS: dict[str, Any] = {
    "kernel_size": [[3, 3, 3]] * 5,
    "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4,
    "upsample_kernel_size": [[2, 2, 2]] * 4,
    "filters": [16, 32, 64, 128, 256],
    "norm_name": ["instance", {"affine": True}],
    "act_name": ["leakyrelu", {"inplace": True, "negative_slope": 0.01}],
    "deep_supervision": True,
    "deep_supr_num": 2,
    "res_block": True,
    "dropout": None,
}

#: The ``network_def`` of MONAI's ``brats_mri_segmentation`` bundle (configs/inference.json).
SEGRESNET_BUNDLE_ARCH: dict[str, Any] = {
    "blocks_down": [1, 2, 2, 4],
    "blocks_up": [1, 1, 1],
    "init_filters": 16,
    "in_channels": 4,
    "out_channels": 3,
    "dropout_prob": 0.2,
}


def _tuple_args(arch: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to what MONAI accepts (tuples for (name, options) pairs)."""
    out = dict(arch)
    for key in ("norm_name", "act_name"):
        val = out.get(key)
        if isinstance(val, list) and len(val) == 2 and isinstance(val[1], dict):
            out[key] = (val[0], val[1])
    return out


def _total_stride(strides: list[list[int]] | list[int]) -> int:
    total = 1
    for s in strides:
        total *= int(max(s) if isinstance(s, (list, tuple)) else s)
    return total


def unet3d_spec(name: str = "unet3d", *, output: str = "regions", filters: list[int] | None = None,
                channels: tuple[str, ...] = ("t1", "t1ce", "t2", "flair"),
                patch_size: tuple[int, int, int] = (128, 128, 128), **overrides: Any) -> ModelSpec:
    """A :class:`ModelSpec` of an Isensee-style 3D U-Net.

    Parameters
    ----------
    name
        Model name.
    output
        ``"regions"`` (WT, TC, ET sigmoid) or ``"labels"`` (4 classes, softmax).
    filters
        Channels per level (5 levels); smaller values make tiny test networks.
    channels
        Input channel order.
    patch_size
        Sliding-window size at inference (model axes).
    **overrides
        Other :class:`monai.networks.nets.DynUNet` arguments.
    """
    arch = dict(UNET3D_DEFAULTS)
    if filters is not None:
        arch["filters"] = list(filters)
    arch.update(overrides)
    arch["spatial_dims"] = 3
    arch["in_channels"] = len(channels)
    arch["out_channels"], regions, classes = output_head(output)
    return ModelSpec(name=name, family="unet3d", arch=arch, channels=tuple(channels), output=output,
                     regions=regions, classes=classes, dims=3, patch_size=tuple(patch_size),
                     divisible_by=_total_stride(arch["strides"]))


def segresnet_spec(name: str = "segresnet-brats-bundle", **overrides: Any) -> ModelSpec:
    """A :class:`ModelSpec` of the ``brats_mri_segmentation`` bundle's SegResNet (overridable arch)."""
    arch = dict(SEGRESNET_BUNDLE_ARCH)
    arch.update(overrides)
    return ModelSpec(
        name=name, family="segresnet", arch=arch, channels=("t1ce", "t1", "t2", "flair"),
        orientation="LPS", output="regions", regions=("TC", "WT", "ET"), classes=(),
        label_scheme="brats2021", normalization={"kind": "nonzero_channelwise"}, dims=3,
        patch_size=(240, 240, 160), divisible_by=2 ** (len(arch["blocks_down"]) - 1),
        provenance={"source": "MONAI model zoo brats_mri_segmentation (configuration)"},
    )


def build_unet3d(spec: ModelSpec) -> nn.Module:
    """DynUNet from ``spec.arch`` wrapped to keep the input's spatial size."""
    from monai.networks.nets import DynUNet

    arch = _tuple_args(spec.arch)
    arch.setdefault("spatial_dims", 3)
    return build_padded(DynUNet, arch, _total_stride(arch["strides"]), 3, f"unet3d {spec.name!r}")


def build_segresnet(spec: ModelSpec) -> nn.Module:
    """SegResNet from ``spec.arch`` wrapped to keep the input's spatial size."""
    from monai.networks.nets import SegResNet

    arch = dict(spec.arch)
    arch.setdefault("spatial_dims", 3)
    multiple = 2 ** (len(arch.get("blocks_down", (1, 2, 2, 4))) - 1)
    return build_padded(SegResNet, arch, multiple, 3, f"segresnet {spec.name!r}")
