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
from ..labels import REGIONS, SCHEMES, get_scheme
from .families import is_self_tiling

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

    @property
    def self_tiling(self) -> bool:
        """Whether the network tiles the volume itself (its family's :attr:`~.families.Family.self_tiling`)."""
        return is_self_tiling(self.family)

    def check_case(self, case: Any) -> list[str]:
        """Check, before any compute, that this model can segment ``case``.

        Parameters
        ----------
        case
            A :class:`~napari_brats_seg.core.case.Case` (``case_id``, ``images`` and ``spacing`` are used).

        Returns
        -------
        list of str
            Warnings that do not prevent running (a voxel spacing far from the training one).

        Raises
        ------
        ModelError
            Naming what does not fit: an unknown or missing modality, a channel count the network does
            not take, images that are not 3D or differ in shape, dims other than 2 or 3, a patch size
            of other dims, an unknown orientation, an output that decoding cannot read.
        """
        _check_channels(self, case)
        _check_layout(self)
        _check_outputs(self)
        spacing = tuple(getattr(case, "spacing", self.spacing))
        if len(self.spacing) == 3 and any(abs(a - b) > 0.25 * b for a, b in zip(sorted(spacing), sorted(self.spacing))):
            return [f"model {self.name!r} was trained at {self.spacing} mm voxels; case {case.case_id} has {spacing} mm"]
        return []

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


def _check_channels(spec: ModelSpec, case: Any) -> None:
    """The spec's channels are known modalities, as many as the network takes, present, 3D, one shape."""
    from ..case import canonical_modality

    name = f"model {spec.name!r}"
    try:
        wanted = [canonical_modality(c) for c in spec.channels]
    except KeyError as exc:
        raise ModelError(f"{name} asks for an unknown input channel: {exc.args[0]}") from None
    arch_in = spec.arch.get("in_channels")
    if arch_in is not None and int(arch_in) != len(wanted):
        raise ModelError(f"{name} takes {arch_in} input channels but lists {len(wanted)} ({', '.join(wanted)})")
    missing = [c for c in wanted if c not in case.images]
    if missing:
        raise ModelError(f"{name} needs {', '.join(wanted)}; case {case.case_id} has no "
                         f"{', '.join(missing)} (it has {', '.join(case.images) or 'nothing'})")
    shapes = {c: tuple(case.images[c].shape) for c in wanted}
    for c, shp in shapes.items():
        if len(shp) != 3:
            raise ModelError(f"{name} needs 3D images; {c} of case {case.case_id} has shape {shp}")
    if len(set(shapes.values())) > 1:
        raise ModelError(f"{name}: the channels of case {case.case_id} differ in shape: {shapes}")


def _check_layout(spec: ModelSpec) -> None:
    """Dims 2 or 3, a patch size of those dims, an orientation of axis codes."""
    import numpy as np

    from ..preprocess import to_model_axes

    name = f"model {spec.name!r}"
    if spec.dims not in (2, 3):
        raise ModelError(f"{name} has dims={spec.dims}; only 2 (axial slices) and 3 are supported")
    if spec.patch_size is not None and len(spec.patch_size) != spec.dims:
        raise ModelError(f"{name}: patch size {spec.patch_size} does not have {spec.dims} dimensions")
    try:
        to_model_axes(np.zeros((1, 1, 1), np.float32), spec.orientation)
    except (ValueError, KeyError):
        raise ModelError(f"{name}: orientation {spec.orientation!r} is not axis codes like 'LPS'") from None


def _check_outputs(spec: ModelSpec) -> None:
    """Outputs decoding can read: internal classes for ``labels``, each of WT, TC and ET for ``regions``."""
    name = f"model {spec.name!r}"
    if spec.output == "regions":
        if not spec.regions or set(spec.regions) - set(REGIONS):
            raise ModelError(f"{name}: region outputs {spec.regions} are not among {', '.join(REGIONS)}")
        if set(spec.regions) != {"WT", "TC", "ET"}:
            raise ModelError(f"{name}: region outputs must be WT, TC and ET, got {spec.regions}")
    elif spec.output == "labels":
        if not spec.classes or set(spec.classes) - {-1, 0, 1, 2, 3, 4}:
            raise ModelError(f"{name}: output classes {spec.classes} are not internal classes 0-4 (or -1)")
    else:
        raise ModelError(f"{name}: output {spec.output!r} is neither 'labels' nor 'regions'")


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
