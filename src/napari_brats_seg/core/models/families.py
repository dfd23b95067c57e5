"""The model families: one :class:`Family` per architecture, and :func:`build_network`.

This is the bottom of the models package: plain data and no torch at import time. A family names
its builder and its default spec maker as ``"module:function"`` inside this package; they are
imported on first use, so listing the families (``brats-seg models --families``) costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .spec import ModelSpec


def _resolve(ref: str, family: str) -> Callable[..., Any]:
    """The function ``"module:function"`` of this package (a :class:`ModelError` when unavailable)."""
    module, name = ref.split(":")
    try:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"model family {family!r} is not available in this installation ({exc})") from None


@dataclass(frozen=True)
class Family:
    """One architecture the project can build.

    Attributes
    ----------
    name
        The registry key (``ModelSpec.family``).
    builder
        ``"module:function"`` of ``build(spec) -> nn.Module`` (the untrained network of a spec).
    dims
        3 for volumetric networks, 2 for slice-wise ones.
    description, source
        What it is, and where it comes from (papers, MONAI), as ``brats-seg models --families`` prints.
    spec_maker
        ``"module:function"`` of the family's default spec maker, called with :attr:`spec_kwargs`;
        None where a spec only comes with the model (MONAI bundles).
    spec_kwargs
        Keyword arguments of the default spec maker (e.g. the 2D family it makes).
    self_tiling
        The network tiles the volume itself (``predict_volume(x, on_progress, cancel, *, origin,
        image_shape)``): inference hands it the whole prepared volume and where it lies in the image.
    """

    name: str
    builder: str
    dims: int
    description: str
    source: str
    spec_maker: str | None = None
    spec_kwargs: Mapping[str, Any] = field(default_factory=dict)
    self_tiling: bool = False

    def build(self, spec: ModelSpec) -> nn.Module:
        """The untrained network of ``spec`` (same spatial size in and out).

        Raises
        ------
        ModelError
            When the spec's dims differ from the family's, or its constructor arguments are rejected.
        """
        if spec.dims != self.dims:
            raise ModelError(f"model {spec.name!r}: family {self.name} is {self.dims}D but the spec says "
                             f"dims={spec.dims}")
        return _resolve(self.builder, self.name)(spec)

    def default_spec(self, **overrides: Any) -> ModelSpec:
        """The family's default spec (``overrides`` go to its spec maker)."""
        if self.spec_maker is None:
            raise ModelError(f"model family {self.name!r} has no default spec (its models carry their own)")
        return _resolve(self.spec_maker, self.name)(**{**self.spec_kwargs, **overrides})


_U2D = "2D U-Net (MONAI BasicUNet) on axial slices"

#: Every family, by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("unet3d", "unet3d:build_unet3d", 3,
           "3D U-Net (DynUNet): residual blocks, instance norm, leaky ReLU, deep supervision",
           "Isensee et al. 2017/2018; MONAI DynUNet", spec_maker="unet3d:unet3d_spec"),
    Family("segresnet", "unet3d:build_segresnet", 3, "SegResNet, brats_mri_segmentation bundle configuration",
           "Myronenko 2018; MONAI model zoo", spec_maker="unet3d:segresnet_spec"),
    Family("cascade", "cascade:build_cascade", 2,
           "TwoPathCNN / Input-, Local-, MFCascadeCNN, fully convolutional",
           "Havaei et al. 2017, Medical Image Analysis 35", spec_maker="cascade:cascade_spec"),
    Family("deepmedic", "deepmedic.network:build_from_spec", 3, "multi-scale 3D CNN with subsampled pathways",
           "Kamnitsas et al. 2017; CaPTk", spec_maker="deepmedic.captk:captk_spec", self_tiling=True),
    Family("unet2d", "unet2d:build_unet2d", 2, _U2D, "Ronneberger et al. 2015",
           spec_maker="unet2d:unet2d_spec", spec_kwargs={"family": "unet2d"}),
    Family("resunet2d", "unet2d:build_unet2d", 2, "2D U-Net with a ResNet-50 encoder (MONAI FlexibleUNet)",
           "He et al. 2016; MONAI FlexibleUNet", spec_maker="unet2d:unet2d_spec",
           spec_kwargs={"family": "resunet2d"}),
    Family("attunet2d", "unet2d:build_unet2d", 2, "2D Attention U-Net (MONAI AttentionUnet)", "Oktay et al. 2018",
           spec_maker="unet2d:unet2d_spec", spec_kwargs={"family": "attunet2d"}),
    Family("bundle", "bundle:build_bundle_network", 3, "an allowlisted MONAI network of a bundle's network_def",
           "MONAI model zoo bundles"),
)}


def family(name: str) -> Family:
    """The :class:`Family` called ``name`` (a :class:`ModelError` listing the known ones otherwise)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def is_self_tiling(family_name: str) -> bool:
    """Whether networks of ``family_name`` tile the volume themselves (False for an unknown family)."""
    fam = FAMILIES.get(family_name)
    return fam is not None and fam.self_tiling


def build_network(spec: ModelSpec) -> nn.Module:
    """The untrained ``torch.nn.Module`` of ``spec`` (same spatial size in and out).

    Raises
    ------
    ModelError
        For an unknown family or constructor arguments the family rejects.
    """
    return family(spec.family).build(spec)
