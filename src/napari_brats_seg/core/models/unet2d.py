"""The 2D slice family: U-Net, U-Net with a ResNet-50 encoder, Attention U-Net (MONAI networks).

All three label axial slices ``(N, 4, a0, a1)`` -> ``(N, K, a0, a1)``; sizes that the encoder cannot
halve enough are zero-padded and the output cropped back (:class:`~.padding.PadToMultiple`).

============  ==========================================================  ===========
family        network                                                     divisible by
============  ==========================================================  ===========
``unet2d``    :class:`monai.networks.nets.BasicUNet` (Ronneberger 2015)   16
``resunet2d`` :class:`monai.networks.nets.FlexibleUNet`, ResNet-50        32
              encoder, no pretrained weights
``attunet2d`` :class:`monai.networks.nets.AttentionUnet` (Oktay 2018)     2**len(strides)
============  ==========================================================  ===========
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelError
from .padding import build_padded
from .spec import ModelSpec, output_head

#: Default constructor arguments per family (in/out channels are added by :func:`unet2d_spec`).
DEFAULT_ARCH: dict[str, dict[str, Any]] = {
    "unet2d": {"features": [32, 32, 64, 128, 256, 32], "act": ["LeakyReLU", {"negative_slope": 0.1, "inplace": True}],
               "norm": ["instance", {"affine": True}], "dropout": 0.0},
    "resunet2d": {"backbone": "resnet50", "pretrained": False,
                  "decoder_channels": [256, 128, 64, 32, 16], "norm": ["batch", {"eps": 1e-3, "momentum": 0.1}]},
    "attunet2d": {"channels": [32, 64, 128, 256, 512], "strides": [2, 2, 2, 2], "dropout": 0.0},
}


def _pairs(arch: dict[str, Any]) -> dict[str, Any]:
    out = dict(arch)
    for key in ("act", "norm"):
        val = out.get(key)
        if isinstance(val, list) and len(val) == 2 and isinstance(val[1], dict):
            out[key] = (val[0], val[1])
    for key in ("features", "channels", "strides", "decoder_channels"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def divisible_by(family: str, arch: dict[str, Any]) -> int:
    """The spatial multiple a 2D family needs."""
    if family == "unet2d":
        return 16
    if family == "resunet2d":
        return 32
    if family == "attunet2d":
        total = 1
        for s in arch.get("strides", DEFAULT_ARCH["attunet2d"]["strides"]):
            total *= int(s)
        return total
    raise ModelError(f"{family!r} is not a 2D U-Net family")


def unet2d_spec(family: str = "unet2d", name: str | None = None, *, output: str = "labels",
                channels: tuple[str, ...] = ("t1", "t1ce", "t2", "flair"),
                patch_size: tuple[int, int] = (240, 240), arch: dict[str, Any] | None = None) -> ModelSpec:
    """A :class:`ModelSpec` of a 2D family (``unet2d``, ``resunet2d``, ``attunet2d``).

    ``arch`` replaces constructor defaults of :data:`DEFAULT_ARCH` (e.g. smaller ``features`` of
    BasicUNet or ``channels`` of AttentionUnet for tests); ``channels`` is the input modality order.
    """
    if family not in DEFAULT_ARCH:
        raise ModelError(f"unknown 2D family {family!r}; known: {', '.join(DEFAULT_ARCH)}")
    overrides = arch or {}
    arch = dict(DEFAULT_ARCH[family])
    arch.update(overrides)
    arch["spatial_dims"] = 2
    arch["in_channels"] = len(channels)
    arch["out_channels"], regions, classes = output_head(output)
    return ModelSpec(name=name or family, family=family, arch=arch, channels=tuple(channels), output=output,
                     regions=regions, classes=classes, dims=2, patch_size=tuple(patch_size),
                     divisible_by=divisible_by(family, arch))


def build_unet2d(spec: ModelSpec) -> nn.Module:
    """Build ``spec.family``'s MONAI network, wrapped to keep the slice size."""
    from monai.networks import nets

    arch = _pairs(spec.arch)
    arch.setdefault("spatial_dims", 2)
    cls = {"unet2d": nets.BasicUNet, "resunet2d": nets.FlexibleUNet, "attunet2d": nets.AttentionUnet}[spec.family]
    if spec.family == "resunet2d" and arch.get("pretrained"):
        raise ModelError("resunet2d with pretrained=True would download ImageNet weights; checkpoints carry "
                         "their own weights, so use pretrained=False")
    return build_padded(cls, arch, divisible_by(spec.family, spec.arch), 2, f"{spec.family} {spec.name!r}")
