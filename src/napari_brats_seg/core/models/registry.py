"""Model families, loading by name or path, listing, and compatibility checks.

- :func:`build_network` builds the ``torch.nn.Module`` a :class:`ModelSpec` describes.
- :func:`load_model` accepts a shipped model's name (``weights/<name>.safetensors`` inside the
  package), a checkpoint file (:mod:`.checkpoint`), a MONAI bundle folder (:mod:`.bundle`) or a
  CaPTk DeepMedic folder (:mod:`.deepmedic`).
- :func:`list_models` describes shipped models and given paths without loading weights where the
  format allows.
- :func:`check_compatible` raises :class:`ModelError` before any compute when a model cannot
  segment a case.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..case import canonical_modality
from ..errors import ModelError
from ..labels import REGIONS
from .spec import LoadedModel, ModelSpec

PathLike = str | os.PathLike

#: Folder of the shipped checkpoints (``napari_brats_seg/weights``).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

#: family -> (module, builder, dims, description, source)
FAMILIES: dict[str, tuple[str, str, int, str, str]] = {
    "unet3d": ("unet3d", "build_unet3d", 3, "3D U-Net (DynUNet): residual blocks, instance norm, leaky ReLU, "  # noqa: ISC004
               "deep supervision", "Isensee et al. 2017/2018; MONAI DynUNet"),
    "segresnet": ("unet3d", "build_segresnet", 3, "SegResNet, brats_mri_segmentation bundle configuration",
                  "Myronenko 2018; MONAI model zoo"),
    "cascade": ("cascade", "build_cascade", 2, "TwoPathCNN / Input-, Local-, MFCascadeCNN, fully convolutional",
                "Havaei et al. 2017, Medical Image Analysis 35"),
    "deepmedic": ("deepmedic", "build_deepmedic", 3, "multi-scale 3D CNN with subsampled pathways",
                  "Kamnitsas et al. 2017; CaPTk"),
    "unet2d": ("unet2d", "build_unet2d", 2, "2D U-Net (MONAI BasicUNet) on axial slices", "Ronneberger et al. 2015"),
    "resunet2d": ("unet2d", "build_unet2d", 2, "2D U-Net with a ResNet-50 encoder (MONAI FlexibleUNet)",
                  "He et al. 2016; MONAI FlexibleUNet"),
    "attunet2d": ("unet2d", "build_unet2d", 2, "2D Attention U-Net (MONAI AttentionUnet)", "Oktay et al. 2018"),
    "bundle": ("bundle", "build_bundle_network", 3, "an allowlisted MONAI network of a bundle's network_def",
               "MONAI model zoo bundles"),
}


def build_network(spec: ModelSpec) -> Any:
    """The untrained ``torch.nn.Module`` of ``spec`` (same spatial size in and out).

    Raises
    ------
    ModelError
        For an unknown family or constructor arguments the family rejects.
    """
    if spec.family not in FAMILIES:
        raise ModelError(f"unknown model family {spec.family!r}; known: {', '.join(FAMILIES)}")
    module, builder, dims, _, _ = FAMILIES[spec.family]
    if spec.dims != dims:
        raise ModelError(f"model {spec.name!r}: family {spec.family} is {dims}D but the spec says dims={spec.dims}")
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
        build = getattr(mod, builder)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"model family {spec.family!r} is not available in this installation ({exc})") from None
    # deepmedic.build_deepmedic takes the constructor arguments; the other builders take the spec
    return build(spec.arch) if spec.family == "deepmedic" else build(spec)


def _is_bundle(folder: Path) -> bool:
    return (folder / "configs" / "metadata.json").is_file() and any(
        (folder / "configs" / f"inference.{ext}").is_file() for ext in ("json", "yaml", "yml"))


def _is_captk_deepmedic(folder: Path) -> bool:
    """A DeepMedic TensorFlow checkpoint folder (CaPTk's has ``modelConfig.txt`` too)."""
    if (folder / "modelConfig.txt").is_file() and (folder / "model.ckpt.index").is_file():
        return True
    return any(folder.glob("*.index")) and any(folder.glob("*.data-*-of-*"))


def shipped_models() -> dict[str, Path]:
    """Name -> checkpoint of every model shipped in the package's weights folder."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.name[: -len(".safetensors")]: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def load_model(name_or_path: PathLike | LoadedModel, device: str = "cpu") -> LoadedModel:
    """Load a model from a shipped name, a checkpoint, a MONAI bundle or a CaPTk DeepMedic folder.

    Parameters
    ----------
    name_or_path
        A shipped model's name (see :func:`shipped_models`), a ``.safetensors`` checkpoint, a
        bundle folder (``configs/inference.json`` + ``configs/metadata.json`` + ``models/model.pt``),
        or a CaPTk DeepMedic folder (``modelConfig.txt`` + ``model.ckpt.index``). A
        :class:`LoadedModel` is returned as is.
    device
        Torch device for the weights.

    Returns
    -------
    LoadedModel
        Network in eval mode with its spec.

    Raises
    ------
    ModelError
        When nothing loadable is found; the message says what was expected.
    """
    if isinstance(name_or_path, LoadedModel):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if _is_bundle(path):
            from .bundle import load_bundle

            return load_bundle(path, device=device)
        if _is_captk_deepmedic(path):
            try:
                from .deepmedic import load_captk_deepmedic
            except ImportError as exc:
                raise ModelError(f"{path}: the DeepMedic loader is not available ({exc})") from None
            return load_captk_deepmedic(path, device=device)
        raise ModelError(f"{path}: a model folder must be a MONAI bundle (configs/inference.json, "
                         "configs/metadata.json, models/model.pt) or a CaPTk DeepMedic model "
                         "(modelConfig.txt, model.ckpt.index)")
    if path.is_file():
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, device=device)
    shipped = shipped_models()
    if text in shipped:
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(shipped[text], device=device)
        loaded.source = text
        return loaded
    from .hub import installed_models

    installed = installed_models()
    if text in installed:
        return load_model(installed[text], device=device)
    known = ", ".join(shipped) or "none are shipped in this installation"
    extra = f"; installed: {', '.join(installed)}" if installed else ""
    raise ModelError(f"{text!r} is neither a file, a model folder nor a shipped or installed model name "
                     f"(shipped: {known}{extra}; `brats-seg models get NAME` installs a publisher's model)")


def describe_spec(spec: ModelSpec) -> dict[str, Any]:
    """A JSON-ready summary of a spec (what ``brats-seg models`` prints)."""
    if spec.output == "regions":
        outputs = list(spec.regions)
    else:
        from ..labels import CLASS_KEYS

        outputs = [CLASS_KEYS.get(c, "unused") if c >= 0 else "unused" for c in spec.classes]
    return {
        "name": spec.name, "family": spec.family, "dims": spec.dims, "channels": list(spec.channels),
        "orientation": spec.orientation, "output": spec.output, "outputs": outputs,
        "label_scheme": spec.label_scheme, "normalization": dict(spec.normalization),
        "patch_size": list(spec.patch_size) if spec.patch_size else None, "spacing": list(spec.spacing),
        "provenance": dict(spec.provenance), "format_version": spec.format_version,
    }


def _spec_of(path: Path) -> ModelSpec:
    """The spec of a model at ``path``, without loading weights where the format allows."""
    if path.is_dir():
        if _is_bundle(path):
            from .bundle import read_bundle_spec

            return read_bundle_spec(path)
        return load_model(path).spec
    from .checkpoint import read_spec

    return read_spec(path)


def list_models(extra: Iterable[PathLike] = ()) -> list[dict[str, Any]]:
    """Describe the shipped models and every path in ``extra``.

    Returns
    -------
    list of dict
        One :func:`describe_spec` dict per model plus ``source`` (path) and ``shipped`` (bool); a
        path that cannot be read gives ``{"source": ..., "error": message}`` instead.
    """
    out: list[dict[str, Any]] = []
    entries = [(p, True) for p in shipped_models().values()] + [(Path(p), False) for p in extra]
    for path, shipped in entries:
        try:
            if not path.exists():
                raise ModelError(f"{path}: no such file or folder")
            info = describe_spec(_spec_of(path))
        except ModelError as exc:
            out.append({"source": str(path), "shipped": shipped, "error": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one unreadable path must not hide the others
            out.append({"source": str(path), "shipped": shipped,
                        "error": f"{path}: cannot be read ({type(exc).__name__}: {exc}); please report this"})
            continue
        info.update(source=str(path), shipped=shipped)
        out.append(info)
    return out + _installed_infos()


def check_compatible(spec: ModelSpec, case: Any) -> list[str]:
    """Check, before any compute, that a model can segment a case.

    Parameters
    ----------
    spec
        The model's metadata.
    case
        A :class:`~napari_brats_seg.core.case.Case` (``images`` and ``spacing`` are used).

    Returns
    -------
    list of str
        Warnings that do not prevent running (e.g. a voxel spacing other than the training one).

    Raises
    ------
    ModelError
        Naming what does not fit: a missing modality, a channel count the network does not take,
        images that are not 3D or differ in shape, an unknown orientation or output description.
    """
    import numpy as np

    from ..preprocess import to_model_axes

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
    if spec.dims not in (2, 3):
        raise ModelError(f"{name} has dims={spec.dims}; only 2 (axial slices) and 3 are supported")
    if spec.patch_size is not None and len(spec.patch_size) != spec.dims:
        raise ModelError(f"{name}: patch size {spec.patch_size} does not have {spec.dims} dimensions")
    try:
        to_model_axes(np.zeros((1, 1, 1), np.float32), spec.orientation)
    except (ValueError, KeyError):
        raise ModelError(f"{name}: orientation {spec.orientation!r} is not axis codes like 'LPS'") from None
    if spec.output == "regions":
        if not spec.regions or set(spec.regions) - set(REGIONS):
            raise ModelError(f"{name}: region outputs {spec.regions} are not among {', '.join(REGIONS)}")
    elif spec.output == "labels":
        if not spec.classes or set(spec.classes) - {-1, 0, 1, 2, 3, 4}:
            raise ModelError(f"{name}: output classes {spec.classes} are not internal classes 0-4 (or -1)")
    else:
        raise ModelError(f"{name}: output {spec.output!r} is neither 'labels' nor 'regions'")
    warnings = []
    spacing = tuple(getattr(case, "spacing", spec.spacing))
    if len(spec.spacing) == 3 and any(abs(a - b) > 0.25 * b for a, b in zip(sorted(spacing), sorted(spec.spacing))):
        warnings.append(f"{name} was trained at {spec.spacing} mm voxels; case {case.case_id} has {spacing} mm")
    return warnings


# -- installed publishers' models and the default choice ------------------------------------------
#: Dice records in the order they rank a model (the first one a model has is used).
RECORD_ORDER = ("cross_validated", "held_out", "reported")


def _installed_infos() -> list[dict[str, Any]]:
    """:func:`describe_spec` dicts of the models installed by ``brats-seg models get/add``."""
    from .hub import installed_models, read_manifest

    out: list[dict[str, Any]] = []
    for name, folder in installed_models().items():
        manifest = read_manifest(folder)
        try:
            info = describe_spec(_installed_spec(folder, manifest))
        except ModelError as exc:
            out.append({"source": str(folder), "shipped": False, "installed": True, "name": name,
                        "error": str(exc)})
            continue
        prov = dict(info["provenance"])
        prov.update(dice=manifest.get("dice") or {}, licence=manifest.get("licence", prov.get("licence")),
                    installed_from=manifest.get("source"), verified=manifest.get("verified"))
        info.update(name=name, source=str(folder), shipped=False, installed=True, provenance=prov)
        out.append(info)
    return out


def _installed_spec(folder: Path, manifest: dict[str, Any]) -> ModelSpec:
    """An installed model's spec without reading its weights (DeepMedic: from ``modelConfig.txt``)."""
    if manifest.get("kind") == "deepmedic" and (folder / "modelConfig.txt").is_file():
        from .deepmedic.captk import _parse_config, arch_from_config, captk_spec

        return captk_spec(arch_from_config(_parse_config(folder / "modelConfig.txt")))
    return _spec_of(folder)


def dice_record(provenance: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The Dice record that ranks a model: ``(kind, {"WT", "TC", "ET", "evaluated_on", ...})``.

    ``provenance["dice"]`` may hold ``cross_validated``, ``held_out`` (real cases the model never saw,
    where known) and ``reported`` (any other figure, e.g. on cases it may have been trained on, or
    the publisher's own); the first of those, in that order, with all three regions is returned.
    """
    dice = provenance.get("dice") if isinstance(provenance, dict) else None
    if not isinstance(dice, dict):
        return None
    for kind in RECORD_ORDER:
        rec = dice.get(kind)
        if isinstance(rec, dict) and all(isinstance(rec.get(r), (int, float)) for r in REGIONS):
            return kind, rec
    return None


def rank_score(info: dict[str, Any]) -> tuple[float | None, str | None]:
    """``(mean of the WT, TC and ET Dice of its ranking record, record kind)``; (None, None) without one."""
    found = dice_record(info.get("provenance") or {})
    if found is None:
        return None, None
    kind, rec = found
    return sum(float(rec[r]) for r in REGIONS) / len(REGIONS), kind


def best_model(infos: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The best available model: shipped or installed, never the ``cascade`` family.

    "Best" is the highest mean of WT, TC and ET Dice of the model's first record in
    :data:`RECORD_ORDER` (cross-validated, else held-out, else reported: a non-cross-validated figure
    can win, and ``brats-seg models`` says which kind it is); a model without a record ranks last;
    ties go to the name. Returns its :func:`list_models` dict, or None when there is none.
    """
    infos = list_models() if infos is None else infos
    candidates = [i for i in infos if "error" not in i and i.get("family") != "cascade"]
    if not candidates:
        return None

    def key(info: dict[str, Any]) -> tuple[int, float, str]:
        score, _ = rank_score(info)
        return (0, -score, str(info.get("name"))) if score is not None else (1, 0.0, str(info.get("name")))

    return min(candidates, key=key)


def default_model() -> str | None:
    """The name :func:`load_model` takes for :func:`best_model` (None when no model is available)."""
    best = best_model()
    if best is None:
        return None
    return best["name"] if best.get("installed") else Path(best["source"]).name[: -len(".safetensors")]


def model_identity(name_or_path: str) -> str:
    """``"<name> (<family>), weights sha256 <first 16 hex>"`` of a model: what reports and DICOM-SEG name.

    The hash is :func:`~.checkpoint.weights_hash` of the loaded network's tensors, so it identifies the
    weights whatever file format they came in. Raises :class:`~...errors.ModelError` when the model
    cannot be loaded.
    """
    from .checkpoint import weights_hash

    model = load_model(name_or_path, device="cpu")
    return f"{model.spec.name} ({model.spec.family}), weights sha256 {weights_hash(model.network.state_dict())[:16]}"
