"""Same-size wrapper: pad the input to what a network needs and crop its output back.

Every network of the registry maps an input of spatial size ``S`` to logits of the same size ``S``
(the contract of :class:`~.spec.LoadedModel`), so inference never needs family-specific shape code.
Encoder-decoder networks need sizes divisible by their total stride; :class:`PadToMultiple` adds
zeros after the end of each spatial axis (zero is the background value of normalised BraTS images)
and removes them from the output, also from DynUNet's stacked deep-supervision outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_amounts(shape: tuple[int, ...], multiple: int) -> list[int]:
    """How many voxels to add after each axis of ``shape`` to reach a multiple of ``multiple``."""
    return [(-s) % multiple for s in shape]


class PadToMultiple(nn.Module):
    """Wrap ``net`` so that any spatial size works and the output has the input's size.

    Parameters
    ----------
    net
        The network; its output's last ``spatial_dims`` axes have the padded input's size.
    multiple
        Spatial sizes the network needs (its total down-sampling factor).
    spatial_dims
        2 or 3.
    """

    def __init__(self, net: nn.Module, multiple: int, spatial_dims: int) -> None:
        super().__init__()
        self.net = net
        self.multiple = int(multiple)
        self.spatial_dims = int(spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, *S)`` -> ``(N, K, *S)`` (or DynUNet's ``(N, D, K, *S)`` while training)."""
        shape = tuple(x.shape[-self.spatial_dims:])
        pads = pad_amounts(shape, self.multiple)
        if any(pads):
            flat: list[int] = []
            for p in reversed(pads):  # F.pad wants the last axis first
                flat += [0, p]
            x = F.pad(x, flat)
        y = self.net(x)
        if any(pads):
            y = y[(Ellipsis,) + tuple(slice(0, s) for s in shape)]
        return y


def build_padded(cls: type[nn.Module], arch: dict, multiple: int, spatial_dims: int, what: str) -> nn.Module:
    """``cls(**arch)`` wrapped in :class:`PadToMultiple`; a constructor that rejects ``arch`` gives a
    :class:`~napari_brats_seg.core.errors.ModelError` naming ``what`` (e.g. ``"unet3d 'tiny'"``)."""
    from ..errors import ModelError

    try:
        net = cls(**arch)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelError(f"cannot build {what}: {exc}") from exc
    return PadToMultiple(net, multiple, spatial_dims)
