"""Cases and segmentations <-> napari layers.

A case becomes four image layers (named by sequence) and, when it has one, a labels layer for its
ground truth. Every layer lies in millimetres (``scale`` = voxel spacing, ``translate`` = the
position of voxel 0 in LPS world coordinates), so layers of one case overlay exactly and the
ruler/measurements are in mm. Each layer's ``metadata["brats_seg"]`` holds a :class:`LayerSource`:
the case's :class:`~napari_brats_seg.core.case.CaseInfo` (geometry, input files, label scheme:
everything the writer needs to put a label map back on the source grid) and the layer's role.

Labels layers hold **internal classes** (0 background, 1 necrotic, 2 edema, 3 enhancing,
4 resection cavity), shown with fixed colours (:data:`core.labels.CLASS_COLOURS`) through a
``DirectLabelColormap`` and named through ``features``.

Display helpers: window/level presets per sequence (:func:`contrast_preset`), the uncertainty
map's colormap and range (:func:`uncertainty_colormap`, :data:`UNCERTAINTY_LIMITS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from napari.utils.colormaps import Colormap, DirectLabelColormap

from ..core import labels as lab
from ..core.case import MODALITIES, MODALITY_NAMES, Case, CaseInfo
from ..core.geometry import Geometry

#: Key of the plugin's entry in ``layer.metadata``.
META_KEY = "brats_seg"
#: Layer order in the viewer (the last one is on top and visible).
DISPLAY_ORDER = ("t1", "t2", "t1ce", "flair")


@dataclass
class LayerSource:
    """Where a layer's voxels come from: its case's :class:`CaseInfo` and the layer's role.

    Every layer made from one case holds that case's one ``CaseInfo``; a derived layer is
    ``dataclasses.replace(source, role=...)``. The case-level attributes (``case_id``, ``geometry``,
    ``layout``, ``scheme``, ``sources``, ``gt_path``, ``input_paths``) read through to the info.

    Attributes
    ----------
    info
        The case header.
    role
        ``"image"``, ``"ground_truth"``, ``"prediction"``, ``"uncertainty"``, ``"labels"``, ...
    modality
        Canonical modality of an image layer, else None.
    """

    info: CaseInfo
    role: str = "image"
    modality: str | None = None

    @property
    def case_id(self) -> str:
        """The case identifier."""
        return self.info.case_id

    @property
    def geometry(self) -> Geometry:
        """The case's reference geometry (the grid label maps are written back into)."""
        return self.info.geometry

    @property
    def layout(self) -> str:
        """The case layout (``brats2021``, ``brats2023``, ``msd``, ``files``, ...)."""
        return self.info.layout

    @property
    def scheme(self) -> str:
        """Label scheme a labels layer is saved in by default."""
        return self.info.scheme

    @property
    def sources(self) -> dict[str, str]:
        """Modality -> input file."""
        return self.info.sources

    @property
    def gt_path(self) -> str | None:
        """The ground-truth file, if any."""
        return self.info.gt_path

    @property
    def input_paths(self) -> list[Path]:
        """Every input file of the case (never written over)."""
        return self.info.input_paths

    @classmethod
    def of_case(cls, case: Case, role: str = "image", **kw: Any) -> LayerSource:
        """The source record of a case's layers (all of them hold ``case.info``)."""
        return cls(info=case.info, role=role, **kw)


def unwrap(obj: Any) -> Any:
    """The napari object behind the public-only proxy napari hands to plugin widgets.

    The proxy makes a new wrapper on every attribute access, so identity (``is``, dict keys,
    ``weakref``) of layers and viewers only holds between unwrapped objects.
    """
    return getattr(obj, "__wrapped__", obj)


#: ``metadata[SCRATCH_KEY]`` is True on the correction tools' scratch layers (seeds, outlines):
#: strokes, not labels of the tumour, so the volumes table and the tools never take them as the target.
SCRATCH_KEY = "brats_seg_scratch"


#: ``metadata[PROBABILITY_KEY]`` of a model's labels layer: its whole-tumour probability, 8-bit
#: (``core.edit.confidence.quantise``, 0-255 for 0-1) on the layer's grid, for *Border by model
#: confidence*. Kept in memory only: the writer and autosave store the labels, not the metadata.
PROBABILITY_KEY = "brats_seg_wt_probability"


def wt_probability(layer: Any) -> np.ndarray | None:
    """The model's whole-tumour probability kept with a labels layer, None when it has none or
    when it does not lie on the layer's grid (its labels were replaced by another array)."""
    p = (getattr(layer, "metadata", None) or {}).get(PROBABILITY_KEY)
    if not isinstance(p, np.ndarray) or p.shape != tuple(np.shape(layer.data)):
        return None
    return p


def is_scratch(layer: Any) -> bool:
    """Whether ``layer`` is a scratch layer of the correction tools (seeds, outlines)."""
    return bool((getattr(layer, "metadata", None) or {}).get(SCRATCH_KEY))


def source_of(layer: Any) -> LayerSource | None:
    """The :class:`LayerSource` of a layer (or of layer-data metadata), None if it has none."""
    meta = layer if isinstance(layer, dict) else getattr(layer, "metadata", {})
    src = (meta or {}).get(META_KEY)
    return src if isinstance(src, LayerSource) else None


def world_placement(geometry: Geometry) -> dict[str, tuple[Any, Any, Any]]:
    """``scale``, ``translate`` (mm, internal ``(z, y, x)`` = S, P, L) and ``units`` of a case's layers.

    With ``units`` in millimetres napari's scale bar and status bar read mm, not pixels.
    """
    origin_ras = geometry.internal_affine[:3, 3]
    translate = (float(origin_ras[2]), float(-origin_ras[1]), float(-origin_ras[0]))
    return {"scale": tuple(float(s) for s in geometry.spacing), "translate": translate,
            "units": ("mm", "mm", "mm")}


def robust_limits(arr: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles of the non-zero voxels (a subsample for speed)."""
    sample = np.asarray(arr)[::2, ::2, ::2]
    nz = sample[sample != 0]
    if nz.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(nz, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


#: Window/level presets: key -> (menu label, modality -> (low, high) percentiles of the brain voxels).
#: *brain* stretches grey/white-matter contrast (lesions and CSF may clip to white or black);
#: *tumour* darkens normal parenchyma and keeps the brightest lesion voxels (enhancement on T1ce,
#: edema on T2/FLAIR; on T1 it keeps the dark core); *auto* is the robust 0.5-99.5 % default.
CONTRAST_PRESETS: dict[str, tuple[str, dict[str | None, tuple[float, float]]]] = {
    "auto": ("robust auto", {None: (0.5, 99.5)}),
    "brain": ("brain", {None: (1.0, 98.0), "t1": (1.0, 99.0)}),
    "tumour": ("tumour / contrast", {None: (40.0, 99.9), "t1ce": (30.0, 99.9), "t1": (0.5, 80.0)}),
}
#: Display range of an uncertainty map (0 = all TTA flips agree, 0.5 = maximal disagreement).
UNCERTAINTY_LIMITS = (0.0, 0.5)


def contrast_preset(arr: np.ndarray, preset: str, modality: str | None = None) -> tuple[float, float]:
    """Contrast limits of a window/level preset (:data:`CONTRAST_PRESETS`) for one sequence.

    Parameters
    ----------
    arr
        The image (non-zero voxels are the brain, as in skull-stripped BraTS cases).
    preset
        ``"auto"``, ``"brain"`` or ``"tumour"``.
    modality
        ``"t1"``, ``"t1ce"``, ``"t2"``, ``"flair"`` or None (the generic percentiles).
    """
    if preset not in CONTRAST_PRESETS:
        raise ValueError(f"unknown contrast preset {preset!r}; use one of {', '.join(CONTRAST_PRESETS)}")
    table = CONTRAST_PRESETS[preset][1]
    low, high = table.get(modality, table[None])
    return robust_limits(arr, low, high)


def uncertainty_colormap() -> Colormap:
    """Perceptual *magma* from purple to orange, transparent at 0, opaque from a fifth of the range.

    Agreeing voxels (0) show the anatomy underneath. The pale-yellow top of magma (and of
    inferno) reads as white over a grey image, so the colormap stops at orange, and with
    ``translucent`` blending it never adds up to white over a bright image (as ``additive`` does).
    """
    from matplotlib import colormaps

    t = np.linspace(0.0, 1.0, 64)
    rgba = np.asarray(colormaps["magma"](0.2 + 0.6 * t), dtype=float)
    rgba[:, 3] = np.clip(t / 0.2, 0.0, 1.0)
    return Colormap(rgba, controls=t, name="magma (purple-orange, transparent low)")


def uncertainty_style() -> dict[str, Any]:
    """Keyword arguments (colormap, range, blending, opacity) of an uncertainty image layer."""
    return {"colormap": uncertainty_colormap(), "contrast_limits": UNCERTAINTY_LIMITS,
            "blending": "translucent", "opacity": 0.8}


def label_colormap(hidden: Iterable[int] = ()) -> DirectLabelColormap:
    """Fixed colours of the internal classes (transparent background, unknown values and ``hidden``)."""
    colours: dict[int | None, tuple[float, ...]] = {None: (0.0, 0.0, 0.0, 0.0)}
    colours.update({int(k): v for k, v in lab.CLASS_COLOURS.items()})
    for k in hidden:
        colours[int(k)] = (0.0, 0.0, 0.0, 0.0)
    return DirectLabelColormap(color_dict=colours)


def label_features() -> pd.DataFrame:
    """``features`` of a labels layer: one row per internal class with its name and short key."""
    keys = sorted(lab.CLASS_NAMES)
    return pd.DataFrame({"index": keys, "name": [lab.CLASS_NAMES[k] for k in keys],
                         "key": [lab.CLASS_KEYS[k] for k in keys]})


def warm_up_layer_creation() -> None:
    """Import and initialise, once, what napari's first layers of a session need, so that it is not
    done on the GUI thread when they are added: SciPy's ``ndimage`` (napari's image thumbnails) and
    pint's unit registry (the layers' ``units``), together over a second, and scikit-image's colour
    module (a labels layer's default colormap, even when another one is given). Call it in a worker
    (the Load widget does, after reading a case); it touches no layer and no Qt object."""
    import scipy.ndimage  # noqa: F401 - napari imports it when it makes the first thumbnail
    import skimage.color  # noqa: F401 - every Labels layer makes napari's random colormap with it

    try:
        import pint

        pint.get_application_registry().Unit("mm")  # the lazy registry builds itself on first use
    except (ImportError, AttributeError):  # pragma: no cover - napari without pint: nothing to warm
        pass


def make_layer(data: Any, kwargs: dict, kind: str) -> Any:
    """The napari layer of a layer-data tuple, made without a viewer: what ``viewer.add_<kind>(data,
    **kwargs)`` adds (that method makes the same layer and appends it; ``add_image`` first defaults
    the colormap to gray and the blending to ``translucent_no_depth``, and so does this). Making a
    layer touches no Qt object, so workers make them and the GUI thread only appends them
    (``viewer.layers.append``)."""
    from napari import layers as napari_layers

    if kind == "image":
        kwargs = {**kwargs, "colormap": kwargs.get("colormap") or "gray",
                  "blending": kwargs.get("blending") or "translucent_no_depth"}
    return getattr(napari_layers, kind.capitalize())(data, **kwargs)


def contrast_limits(case: Case) -> dict[str, tuple[float, float]]:
    """:func:`robust_limits` of each sequence of ``case``: what its image layers start with. Percentiles
    of a whole volume take a moment, so the Load widget computes them in its worker and hands them to
    :func:`case_layer_data`."""
    return {m: robust_limits(a) for m, a in case.images.items()}


def image_layer_data(case: Case, modality: str, limits: tuple[float, float] | None = None
                     ) -> tuple[np.ndarray, dict, str]:
    """A layer-data tuple of one sequence of ``case`` (``limits``: its contrast limits, computed when None)."""
    arr = case.images[modality]
    kwargs = {
        "name": f"{MODALITY_NAMES[modality]} [{case.case_id}]",
        "colormap": "gray",
        "contrast_limits": limits if limits is not None else robust_limits(arr),
        "visible": modality == DISPLAY_ORDER[-1],
        "metadata": {META_KEY: LayerSource.of_case(case, "image", modality=modality)},
        **world_placement(case.geometry),
    }
    return arr, kwargs, "image"


def labels_layer_data(labels: np.ndarray, source: LayerSource, name: str) -> tuple[np.ndarray, dict, str]:
    """A labels layer-data tuple for an internal-class map lying on ``source``'s grid."""
    kwargs = {
        "name": name,
        "colormap": label_colormap(),
        "features": label_features(),
        "opacity": 0.6,
        "metadata": {META_KEY: source},
        **world_placement(source.geometry),
    }
    return np.asarray(labels, dtype=np.uint8), kwargs, "labels"


def case_layer_data(case: Case, limits: dict[str, tuple[float, float]] | None = None
                    ) -> list[tuple[np.ndarray, dict, str]]:
    """Every layer of a case: its four sequences and, if present, its ground truth (on top).

    ``limits``: contrast limits per sequence (:func:`contrast_limits`), computed here when None.
    """
    out = [image_layer_data(case, m, (limits or {}).get(m)) for m in DISPLAY_ORDER if m in case.images]
    if case.ground_truth is not None:
        src = LayerSource.of_case(case, "ground_truth")
        out.append(labels_layer_data(case.ground_truth, src, f"ground truth [{case.case_id}]"))
    return out


def case_from_layers(layers: Iterable[Any], case_id: str | None = None) -> Case:
    """Rebuild a :class:`Case` from the image layers of one case in the viewer.

    Parameters
    ----------
    layers
        Layers to look through (e.g. ``viewer.layers``).
    case_id
        Which case; the first case found when None.

    Raises
    ------
    KeyError
        When no case (or not all four sequences of it) is among the layers.
    """
    found: dict[str, tuple[LayerSource, np.ndarray]] = {}
    for layer in layers:
        src = source_of(layer)
        if src is None or src.role != "image" or src.modality is None:
            continue
        if case_id is None:
            case_id = src.case_id
        if src.case_id == case_id and src.modality not in found:
            found[src.modality] = (src, np.asarray(layer.data))
    if case_id is None:
        raise KeyError("no case is open: load one first")
    missing = [m for m in MODALITIES if m not in found]
    if missing:
        raise KeyError(f"case {case_id} lacks the sequence layer(s) {', '.join(missing)}")
    first = found[MODALITIES[0]][0]
    images = {m: found[m][1].astype(np.float32, copy=False) for m in MODALITIES}
    return Case(first.case_id, images, first.geometry, first.layout,
                {m: Path(p) for m, p in first.sources.items()},
                gt_path=Path(first.gt_path) if first.gt_path else None)


def case_ids(layers: Iterable[Any]) -> list[str]:
    """The distinct case identifiers of the image layers, in layer order."""
    out: list[str] = []
    for layer in layers:
        src = source_of(layer)
        if src is not None and src.role == "image" and src.case_id not in out:
            out.append(src.case_id)
    return out
