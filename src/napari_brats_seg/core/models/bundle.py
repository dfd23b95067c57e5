"""MONAI bundles (model zoo folders) as :class:`LoadedModel`.

A bundle folder holds ``configs/inference.json`` (or ``.yaml``), ``configs/metadata.json`` and
``models/model.pt``. What is read:

- the configs are read as plain data (``json`` / ``yaml.safe_load``), never by MONAI's
  instantiating ``ConfigParser``: nothing in them is imported, instantiated or evaluated, and a
  ``_requires_`` entry anywhere in the inference config is refused;
- the network: ``network_def`` of the inference config, built by
  :func:`~.monai_nets.build_network_def` from an allowlist of MONAI network classes with JSON-literal
  arguments (:data:`~.monai_nets.ALLOWED_NETWORKS`; nested objects, ``_``-keys, ``$`` expressions,
  ``@`` references and ``%`` macros are refused, naming the key). A SegResNet becomes the
  ``segresnet`` family, any other allowed class the ``bundle`` family;
- input channels: ``network_data_format.inputs.image.channel_def`` of the metadata (``brats_mri_
  segmentation``: T1c, T1, T2, FLAIR), mapped to canonical names with
  :func:`~napari_brats_seg.core.case.canonical_modality`;
- outputs: ``network_data_format.outputs.pred.channel_def``; region names (tumour core, whole tumour,
  enhancing tumour) make a ``regions`` model whose sigmoid outputs > 0.5 merge into labels with ET
  inside TC inside WT (:func:`~napari_brats_seg.core.labels.regions_to_labels`, what the bundle's
  post-processing ``Lambdad`` does);
- normalisation: ``NormalizeIntensityd(nonzero=True, channel_wise=True)`` -> ``nonzero_channelwise``;
- orientation: an ``Orientationd`` transform's ``axcodes``, else ``"LPS"``: the bundle reads the
  files as stored, and BraTS files are stored in LPS order;
- window: the ``inferer``'s ``roi_size``; divisibility from ``spatial_shape`` (``"8*n"`` -> 8);
- weights: ``models/model.pt`` read with ``torch.load(weights_only=True)`` (a state dict, possibly
  under a ``"model"`` key, ``module.`` prefixes of DataParallel removed).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from torch import nn

from ..case import canonical_modality
from ..errors import ModelError
from .monai_nets import build_network_def, check_network_def, find_key
from .padding import PadToMultiple
from .spec import LoadedModel, ModelSpec

PathLike = str | os.PathLike

_REGION_WORDS = {"tumorcore": "TC", "tumourcore": "TC", "tc": "TC", "wholetumor": "WT", "wholetumour": "WT",
                 "wt": "WT", "enhancingtumor": "ET", "enhancingtumour": "ET", "et": "ET"}


def _config_file(folder: Path) -> Path:
    for ext in ("json", "yaml", "yml"):
        path = folder / "configs" / f"inference.{ext}"
        if path.is_file():
            return path
    raise ModelError(f"{folder}: no configs/inference.json (or .yaml): not a MONAI bundle")


def _load_data(path: Path) -> Any:
    """A JSON or YAML file as plain data (``yaml.safe_load`` builds no Python objects)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def _read_configs(folder: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """``(inference config, metadata, inference config's path)``, read as data, ``_requires_`` refused."""
    cfg_path, meta_path = _config_file(folder), folder / "configs" / "metadata.json"
    if not meta_path.is_file():
        raise ModelError(f"{folder}: no configs/metadata.json: not a MONAI bundle")
    parsed = []
    for path in (cfg_path, meta_path):
        try:
            parsed.append(_load_data(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the bundle configuration ({exc})") from None
        except Exception as exc:  # JSON / YAML syntax errors, nesting too deep  # noqa: BLE001
            raise ModelError(f"{path}: cannot parse the bundle configuration ({exc})") from None
    config, meta = parsed
    if not isinstance(config, dict) or "network_def" not in config:
        raise ModelError(f"{cfg_path}: has no network_def")
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: is not a JSON object")
    try:
        requires = next(find_key(config, "_requires_"), None)
    except RecursionError:
        raise ModelError(f"{cfg_path}: the configuration is nested too deeply") from None
    if requires is not None:
        raise ModelError(f"{cfg_path}: {requires} is refused: _requires_ entries run code when MONAI "
                         "instantiates a config; this loader reads bundles as data only")
    return config, meta, cfg_path


def _get(data: Any, *keys: str) -> Any:
    """``data[k0][k1]...`` where each level is a dict, else None."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _transforms(section: Any) -> list[dict[str, Any]]:
    if isinstance(section, dict):
        items = section.get("transforms", [section])
    elif isinstance(section, list):
        items = section
    else:
        items = []
    return [t for t in items if isinstance(t, dict)]


def _multiple(shape: Any) -> int:
    """``["8*n", "8*n", "8*n"]`` -> 8 (1 when nothing is stated)."""
    if not isinstance(shape, list):
        return 1
    found = [int(m.group(1)) for s in shape if isinstance(s, str) for m in [re.match(r"^(\d+)\*n$", s)] if m]
    return max(found) if found else 1


def read_bundle_spec(folder: PathLike) -> ModelSpec:
    """The :class:`ModelSpec` of a bundle, from its configs only (no weights read).

    Raises
    ------
    ModelError
        When the folder is no bundle, or its channels or outputs are not the four BraTS sequences
        and BraTS regions.
    """
    folder = Path(folder)
    config, meta, cfg_path = _read_configs(folder)
    where = str(folder)
    network_def = config["network_def"]
    cls, arch = check_network_def(network_def, str(cfg_path))
    image = _get(meta, "network_data_format", "inputs", "image") or {}
    chan_def = _get(image, "channel_def") or {}
    try:
        channels = tuple(canonical_modality(chan_def[k]) for k in sorted(chan_def, key=int))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{where}: input channel_def {chan_def} is not the BraTS sequences ({exc})") from None
    if not channels:
        raise ModelError(f"{where}: metadata.json has no network_data_format.inputs.image.channel_def")
    out_def = _get(meta, "network_data_format", "outputs", "pred", "channel_def") or {}
    try:
        keys = ["".join(ch for ch in str(out_def[k]).lower() if ch.isalnum()) for k in sorted(out_def, key=int)]
    except (KeyError, ValueError, TypeError):
        keys = ["?"]
    regions = tuple(_REGION_WORDS.get(k, "?") for k in keys)
    if not regions or "?" in regions:
        raise ModelError(f"{where}: output channel_def {out_def} is not tumour core / whole tumour / enhancing "
                         "tumour regions (label outputs of bundles are not supported yet)")
    dims = arch.get("spatial_dims", 3)
    if dims not in (2, 3):
        raise ModelError(f"{cfg_path}: network_def.spatial_dims is {dims!r}, not 2 or 3")
    multiple = max(_multiple(image.get("spatial_shape")), 1)
    orientation, normalization = "LPS", {"kind": "zscore_brain"}
    for t in _transforms(config.get("preprocessing")):
        kind = str(t.get("_target_", "")).rsplit(".", 1)[-1]
        if kind.startswith("Orientation") and isinstance(t.get("axcodes"), str):
            orientation = t["axcodes"]
        if kind.startswith("NormalizeIntensity") and t.get("nonzero") and t.get("channel_wise"):
            normalization = {"kind": "nonzero_channelwise"}
    roi = _get(config, "inferer", "roi_size")
    patch = tuple(int(r) for r in roi) if isinstance(roi, list) and all(isinstance(r, int) for r in roi) else None
    provenance = {"source": f"MONAI bundle {meta.get('name') or folder.name}", "version": meta.get("version"),
                  "description": meta.get("description"), "data": meta.get("data_source"),
                  "scores": meta.get("eval_metrics"), "references": meta.get("references"),
                  "intended_use": meta.get("intended_use")}
    provenance = {k: v for k, v in provenance.items() if v is not None}
    if cls.__name__ == "SegResNet":
        family = "segresnet"
    else:
        family, arch = "bundle", {"network_def": network_def, "divisible_by": multiple}
    return ModelSpec(name=str(meta.get("name") or folder.name), family=family, arch=arch, channels=channels,
                     orientation=orientation, output="regions", regions=regions, classes=(),
                     label_scheme="brats2021", normalization=normalization, dims=dims, patch_size=patch,
                     divisible_by=multiple, provenance=provenance, crop=False)


def build_bundle_network(spec: ModelSpec, where: str | None = None) -> nn.Module:
    """Build a ``bundle``-family spec's ``network_def`` (allowlisted MONAI class, literal arguments).

    The one builder of bundle networks, for bundle folders and checkpoints alike:
    :func:`~.monai_nets.build_network_def`, wrapped in :class:`PadToMultiple`.

    Raises
    ------
    ModelError
        Naming ``where`` (default: the model's name) and the refused key.
    """
    where = where or f"model {spec.name!r}"
    if "network_def" not in spec.arch:
        raise ModelError(f"{where}: bundle family without a network_def")
    net = build_network_def(spec.arch["network_def"], where)
    return PadToMultiple(net, int(spec.arch.get("divisible_by", 1)), spec.dims)


def _read_weights(path: Path, device: str) -> dict[str, Any]:
    import torch

    if not path.is_file():
        ts = path.with_suffix(".ts")
        hint = " (only TorchScript models/model.ts is there, which is not supported)" if ts.is_file() else ""
        raise ModelError(f"{path}: the bundle has no weights file{hint}")
    try:
        state = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, forbidden globals  # noqa: BLE001
        raise ModelError(f"{path}: cannot read the weights as a plain state dict ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_bundle(folder: PathLike, device: str = "cpu") -> LoadedModel:
    """Load a MONAI bundle folder: network, weights and what it expects.

    Raises
    ------
    ModelError
        For a folder that is no bundle, a network_def that is not a literal MONAI network, missing
        or unreadable weights, or weights that do not fit the network.
    """
    from .families import build_network

    folder = Path(folder)
    spec = read_bundle_spec(folder)
    try:
        network = build_network(spec)
    except ModelError as exc:
        raise ModelError(f"{_config_file(folder)}: {exc}") from None
    inner = network.net if isinstance(network, PadToMultiple) else network
    state = _read_weights(folder / "models" / "model.pt", device)
    try:
        inner.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{folder}: models/model.pt does not fit its network_def: {first}") from None
    network.to(device).eval()
    return LoadedModel(spec=spec, network=network, source=str(folder))
