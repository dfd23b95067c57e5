"""MONAI bundles (model zoo folders) as :class:`LoadedModel`.

A bundle folder holds ``configs/inference.json`` (or ``.yaml``), ``configs/metadata.json`` and
``models/model.pt``. What is read:

- the network: ``network_def`` of the inference config, instantiated with
  :class:`monai.bundle.ConfigParser`. Only a MONAI network class with literal arguments is accepted
  (no ``$`` expressions or ``@`` references), so loading runs no code from the config. A SegResNet
  becomes the ``segresnet`` family, anything else the ``bundle`` family;
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


def _read_configs(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from monai.bundle import ConfigParser

    cfg_path, meta_path = _config_file(folder), folder / "configs" / "metadata.json"
    try:
        parser = ConfigParser()
        parser.read_config(str(cfg_path))
        config = parser.get()
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder}: no configs/metadata.json: not a MONAI bundle") from None
    except Exception as exc:  # JSON / YAML syntax errors of several libraries  # noqa: BLE001
        raise ModelError(f"{folder}: cannot parse the bundle configuration ({exc})") from None
    if not isinstance(config, dict) or "network_def" not in config:
        raise ModelError(f"{cfg_path}: has no network_def")
    return config, meta


def _literal_only(value: Any, where: str) -> None:
    """Refuse ``$`` expressions and ``@`` references (they would run code from the config)."""
    if isinstance(value, str) and value[:1] in ("$", "@", "%"):
        raise ModelError(f"{where}: network_def uses the expression {value!r}; only literal arguments are "
                         "loaded (expressions would execute code from the bundle)")
    if isinstance(value, dict):
        for _k, v in value.items():
            _literal_only(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _literal_only(v, where)


def _target_name(network_def: dict[str, Any], where: str) -> str:
    target = str(network_def.get("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    if "." in target and not target.startswith("monai.networks."):
        raise ModelError(f"{where}: network {target!r} is not a MONAI network; only monai.networks "
                         "classes are instantiated")
    from monai.networks import nets

    if not hasattr(nets, name):
        raise ModelError(f"{where}: network {target!r} is not a monai.networks.nets class")
    return name


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
    found = [int(m.group(1)) for s in (shape or []) if isinstance(s, str) for m in [re.match(r"^(\d+)\*n$", s)] if m]
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
    config, meta = _read_configs(folder)
    where = str(folder)
    network_def = dict(config["network_def"])
    _literal_only(network_def, where)
    target = _target_name(network_def, where)
    fmt = meta.get("network_data_format", {})
    image = fmt.get("inputs", {}).get("image", {})
    chan_def = image.get("channel_def") or {}
    try:
        channels = tuple(canonical_modality(chan_def[k]) for k in sorted(chan_def, key=int))
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{where}: input channel_def {chan_def} is not the BraTS sequences ({exc})") from None
    if not channels:
        raise ModelError(f"{where}: metadata.json has no network_data_format.inputs.image.channel_def")
    pred = fmt.get("outputs", {}).get("pred", {})
    out_def = pred.get("channel_def") or {}
    keys = ["".join(ch for ch in str(out_def[k]).lower() if ch.isalnum()) for k in sorted(out_def, key=int)]
    regions = tuple(_REGION_WORDS.get(k, "?") for k in keys)
    if not regions or "?" in regions:
        raise ModelError(f"{where}: output channel_def {out_def} is not tumour core / whole tumour / enhancing "
                         "tumour regions (label outputs of bundles are not supported yet)")
    arch = {k: v for k, v in network_def.items() if k != "_target_"}
    dims = int(arch.get("spatial_dims", 3))
    multiple = max(_multiple(image.get("spatial_shape")), 1)
    orientation, normalization = "LPS", {"kind": "zscore_brain"}
    for t in _transforms(config.get("preprocessing")):
        kind = str(t.get("_target_", "")).rsplit(".", 1)[-1]
        if kind.startswith("Orientation") and isinstance(t.get("axcodes"), str):
            orientation = t["axcodes"]
        if kind.startswith("NormalizeIntensity") and t.get("nonzero") and t.get("channel_wise"):
            normalization = {"kind": "nonzero_channelwise"}
    roi = (config.get("inferer") or {}).get("roi_size")
    patch = tuple(int(r) for r in roi) if isinstance(roi, list) and all(isinstance(r, int) for r in roi) else None
    provenance = {"source": f"MONAI bundle {meta.get('name') or folder.name}", "version": meta.get("version"),
                  "description": meta.get("description"), "data": meta.get("data_source"),
                  "scores": meta.get("eval_metrics"), "references": meta.get("references"),
                  "intended_use": meta.get("intended_use")}
    provenance = {k: v for k, v in provenance.items() if v is not None}
    if target == "SegResNet":
        family = "segresnet"
    else:
        family, arch = "bundle", {"network_def": network_def, "divisible_by": multiple}
    return ModelSpec(name=meta.get("name") or folder.name, family=family, arch=arch, channels=channels,
                     orientation=orientation, output="regions", regions=regions, classes=(),
                     label_scheme="brats2021", normalization=normalization, dims=dims, patch_size=patch,
                     divisible_by=multiple, provenance=provenance, crop=False)


def build_bundle_network(spec: ModelSpec) -> nn.Module:
    """Instantiate a ``bundle``-family spec's ``network_def`` (literal MONAI networks only)."""
    from monai.bundle import ConfigParser

    network_def = spec.arch.get("network_def")
    if not isinstance(network_def, dict):
        raise ModelError(f"model {spec.name!r}: bundle family without a network_def")
    _literal_only(network_def, spec.name)
    _target_name(network_def, spec.name)
    try:
        net = ConfigParser({"network_def": network_def}).get_parsed_content("network_def")
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"model {spec.name!r}: cannot instantiate its network_def ({exc})") from None
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
    from .registry import build_network

    folder = Path(folder)
    spec = read_bundle_spec(folder)
    network = build_network(spec)
    inner = network.net if isinstance(network, PadToMultiple) else network
    state = _read_weights(folder / "models" / "model.pt", device)
    try:
        inner.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{folder}: models/model.pt does not fit its network_def: {first}") from None
    network.to(device).eval()
    return LoadedModel(spec=spec, network=network, source=str(folder))
