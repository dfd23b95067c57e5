"""Loading models by name or path, listing them, and choosing the default one.

The families (what a spec builds) are in :mod:`.families`; a spec checks a case itself
(:meth:`.spec.ModelSpec.check_case`).

- :func:`load_model` accepts a shipped model's name (``weights/<name>.safetensors`` inside the
  package), a checkpoint file (:mod:`.checkpoint`), a MONAI bundle folder (:mod:`.bundle`) or a
  CaPTk DeepMedic folder (:mod:`.deepmedic`).
- :func:`list_models` describes shipped models and given paths without loading weights where the
  format allows.
- :func:`best_model` / :func:`default_model`: the best shipped or installed model by its Dice record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..labels import REGIONS
from .spec import LoadedModel, ModelSpec

PathLike = str | os.PathLike

#: Folder of the shipped checkpoints (``napari_brats_seg/weights``).
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

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


def weights_id(model: LoadedModel) -> str:
    """The SHA-256 (hex) that identifies a loaded model's weights.

    For a project checkpoint (shipped, installed or a file) it is the ``weights_sha256`` recorded in
    the file, which :func:`~.checkpoint.load_checkpoint` verified; for other formats (MONAI bundles,
    CaPTk DeepMedic folders, older checkpoints) :func:`~.checkpoint.weights_hash` of the network's
    tensors.
    """
    from .checkpoint import HASH_KEY, weights_hash

    path = shipped_models().get(str(model.source)) or Path(str(model.source))
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            recorded = (fh.metadata() or {}).get(HASH_KEY)
        if recorded:
            return recorded
    return weights_hash(model.network.state_dict())


def model_identity(name_or_path: str) -> str:
    """``"<name> (<family>), weights sha256 <first 16 hex>"`` of a model: what reports and DICOM-SEG name.

    The hash is :func:`weights_id`. Raises :class:`~...errors.ModelError` when the model cannot be loaded.
    """
    model = load_model(name_or_path, device="cpu")
    return f"{model.spec.name} ({model.spec.family}), weights sha256 {weights_id(model)[:16]}"
