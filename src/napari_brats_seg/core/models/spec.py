"""What a model expects and produces: the metadata every checkpoint carries.

A :class:`ModelSpec` is plain data (no torch): it travels as JSON inside checkpoints and is checked
against a case before any compute, so a model never silently receives the wrong channels, voxel
order or label convention.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import LabelSchemeError, ModelError
from ..labels import SCHEMES, get_scheme

#: Version of the checkpoint metadata layout.
FORMAT_VERSION = 1


def output_head(output: str) -> tuple[int, tuple[str, ...], tuple[int, ...]]:
    """``(out_channels, regions, classes)`` of a network with ``output`` ``"regions"`` or ``"labels"``.

    Regions are the sigmoid channels WT, TC, ET; labels the softmax classes bg, NCR, ED, ET.

    Raises
    ------
    ModelError
        For any other output kind.
    """
    if output == "regions":
        return 3, ("WT", "TC", "ET"), ()
    if output == "labels":
        return 4, (), (0, 1, 2, 3)
    raise ModelError(f"output must be 'regions' or 'labels', not {output!r}")


@dataclass
class ModelSpec:
    """Metadata of a segmentation model.

    Attributes
    ----------
    name
        Short name shown to users (e.g. ``"unet3d-default"``).
    family
        Registry key of the architecture: ``unet3d``, ``segresnet``, ``cascade``, ``deepmedic``,
        ``unet2d``, ``resunet2d``, ``attunet2d``, ...
    arch
        Keyword arguments of the family's constructor.
    channels
        Input channel order by canonical modality name (``t1``, ``t1ce``, ``t2``, ``flair``).
    orientation
        Voxel orientation (nibabel axcodes of x, y, z) the network was trained on. ``"LPS"`` is
        the BraTS files' stored order and the project's internal order.
    output
        ``"labels"``: one channel per class, softmax; ``"regions"``: one sigmoid channel per region.
    classes
        For ``labels``: the internal class (0 bg, 1 NCR, 2 ED, 3 ET) of each output channel, -1 for
        a channel that is never chosen (e.g. the unused label 3 of BraTS 2018 models).
    regions
        For ``regions``: the region of each output channel, e.g. ``("TC", "WT", "ET")``.
    label_scheme
        The scheme of the labels the model was trained on (provenance; conversions go through
        :mod:`napari_brats_seg.core.labels`). One :func:`~napari_brats_seg.core.labels.get_scheme`
        knows, else :class:`ModelError` on construction.
    normalization
        ``{"kind": ...}`` with ``zscore_brain`` (per channel, brain voxels), ``deepmedic`` (CaPTk
        cut-offs) or ``nonzero_channelwise`` (MONAI NormalizeIntensity nonzero=True), plus options.
    dims
        3 for volumetric networks, 2 for slice-wise ones (axial slices).
    patch_size
        Window (3D) or slice size (2D) used at inference; None for whole volume.
    spacing
        Voxel spacing (mm) the model was trained at.
    divisible_by
        Spatial sizes the network needs the input to be divisible by (padding is added).
    provenance
        Free-form: data, epochs, scores, licence, source.
    crop
        Whether inference may crop the volume to the brain's bounding box (the default, about twice as
        fast). ``False`` for networks whose own pipeline sees the whole volume and whose normalisation
        layers (GroupNorm, InstanceNorm) take statistics over it, e.g. MONAI bundles: cropping changes
        their output.
    format_version
        Metadata layout version.
    """

    name: str
    family: str
    arch: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
    orientation: str = "LPS"
    output: str = "labels"
    classes: tuple[int, ...] = (0, 1, 2, 3)
    regions: tuple[str, ...] = ()
    label_scheme: str = "brats2021"
    normalization: dict[str, Any] = field(default_factory=lambda: {"kind": "zscore_brain"})
    dims: int = 3
    patch_size: tuple[int, ...] | None = None
    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)
    divisible_by: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)
    crop: bool = True
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        """Refuse a ``label_scheme`` that :func:`~napari_brats_seg.core.labels.get_scheme` does not know."""
        try:
            get_scheme(self.label_scheme)
        except (LabelSchemeError, TypeError):
            raise ModelError(f"model {self.name!r}: label_scheme {self.label_scheme!r} is not a known label scheme "
                             f"({', '.join(SCHEMES)})") from None

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse a JSON string written by :meth:`to_json` (lists become tuples)."""
        data = json.loads(text)
        for key in ("channels", "classes", "regions", "patch_size", "spacing"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model metadata keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class LoadedModel:
    """A network ready for inference together with its metadata.

    Attributes
    ----------
    spec
        What the network expects and produces.
    network
        A ``torch.nn.Module`` in eval mode. For ``spec.dims == 3`` it maps ``(N, C, a0, a1, a2)``
        float32 (axes in ``spec.orientation`` voxel order, channels in ``spec.channels`` order,
        normalised as ``spec.normalization``) to ``(N, K, a0, a1, a2)`` logits; for ``dims == 2``
        ``(N, C, a0, a1)`` axial slices to ``(N, K, a0, a1)``.
    source
        Where it was loaded from (a path, a shipped model's name, ``"memory"``).
    """

    spec: ModelSpec
    network: Any
    source: str = "memory"
