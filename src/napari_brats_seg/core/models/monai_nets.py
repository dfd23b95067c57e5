"""MONAI networks built from plain data: an allowlist of classes, JSON-literal arguments only.

A model file (a MONAI bundle's ``network_def``, or a checkpoint whose spec says family ``bundle``)
describes its network as ``{"_target_": "SegResNet", "in_channels": 4, ...}``. Nothing of it is
given to MONAI's instantiating ``ConfigParser`` and nothing is imported by name: the ``_target_``
is looked up in :data:`ALLOWED_NETWORKS` (``"SegResNet"`` or ``"monai.networks.nets.SegResNet"``)
and the class is called with the remaining entries as keyword arguments, which must be JSON
literals: numbers, strings, booleans, null, and (nested) lists of them. Refused, with a
:class:`~napari_brats_seg.core.errors.ModelError` that names the file and the key:

- any object (dict) among the arguments (MONAI would instantiate a nested ``_target_``);
- any key starting with ``_`` other than the one ``_target_`` (``_requires_``, ``_mode_``, ...);
- any string starting with ``$`` (an expression), ``@`` (a reference) or ``%`` (a macro);
- a ``_target_`` outside the allowlist.

So loading a model runs no code from the model file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from torch import nn

from ..errors import ModelError

#: Volumetric segmentation networks of ``monai.networks.nets`` a model file may name.
ALLOWED_NETWORKS: tuple[str, ...] = (
    "SegResNet", "SegResNetDS", "UNet", "BasicUNet", "DynUNet", "AttentionUnet", "VNet", "HighResNet",
    "UNETR", "SwinUNETR", "MedNeXt",
)
_MONAI_PREFIX = "monai.networks.nets."
_MAX_DEPTH = 6


def network_class(target: Any, where: str) -> type[nn.Module]:
    """The allowlisted MONAI class a ``_target_`` names (its aliases like ``Unet`` included).

    Raises
    ------
    ModelError
        For anything but ``NAME`` or ``monai.networks.nets[.module].NAME`` with ``NAME`` allowed.
    """
    from monai.networks import nets

    if not isinstance(target, str) or not target:
        raise ModelError(f"{where}: network_def._target_ must name a MONAI network class, found {target!r}")
    name = target.rsplit(".", 1)[-1]
    if "." in target and not target.startswith(_MONAI_PREFIX):
        raise ModelError(f"{where}: network_def._target_ {target!r} is not a MONAI network; allowed: "
                         f"{', '.join(ALLOWED_NETWORKS)}")
    cls = None if name.startswith("_") else getattr(nets, name, None)
    if not any(cls is getattr(nets, n) for n in ALLOWED_NETWORKS):
        raise ModelError(f"{where}: network_def._target_ {target!r} is not an allowed network class; allowed: "
                         f"{', '.join(ALLOWED_NETWORKS)} (of monai.networks.nets)")
    return cls


def _check_literal(value: Any, key: str, where: str, depth: int = 0) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where}: {key} is {value!r}; only finite numbers are accepted")
        return
    if isinstance(value, str):
        if value[:1] in ("$", "@", "%"):
            kind = {"$": "an expression", "@": "a reference", "%": "a macro"}[value[0]]
            raise ModelError(f"{where}: {key} is {kind} ({value[:60]!r}); model files may hold only literal "
                             "arguments (expressions and references would run code from the file)")
        return
    if isinstance(value, list | tuple):
        if depth >= _MAX_DEPTH:
            raise ModelError(f"{where}: {key} is nested more than {_MAX_DEPTH} lists deep")
        for i, item in enumerate(value):
            _check_literal(item, f"{key}[{i}]", where, depth + 1)
        return
    if isinstance(value, dict):
        raise ModelError(f"{where}: {key} is an object ({_short(value)}); network arguments must be numbers, "
                         "strings, booleans, null or lists of them (a nested object could run code)")
    raise ModelError(f"{where}: {key} has the unsupported type {type(value).__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_network_def(network_def: Any, where: str) -> tuple[type[nn.Module], dict[str, Any]]:
    """Validate a ``network_def``: the allowlisted class and its literal keyword arguments.

    Parameters
    ----------
    network_def
        The plain data read from the model file.
    where
        The file, named in every error.

    Returns
    -------
    tuple
        ``(class, kwargs)``.

    Raises
    ------
    ModelError
        Naming the file and the offending key (see the module docstring).
    """
    if not isinstance(network_def, dict):
        raise ModelError(f"{where}: network_def must be an object {{\"_target_\": \"SegResNet\", ...}} with literal "
                         f"arguments, found {type(network_def).__name__} {_short(network_def)} (expressions and "
                         "references are not run)")
    kwargs: dict[str, Any] = {}
    for key, value in network_def.items():
        if not isinstance(key, str):
            raise ModelError(f"{where}: network_def has a non-text key {key!r}")
        if key == "_target_":
            continue
        if key.startswith("_"):
            raise ModelError(f"{where}: network_def.{key} is refused: keys starting with '_' other than "
                             "_target_ are MONAI config directives, which could run code")
        if not key.isidentifier():
            raise ModelError(f"{where}: network_def key {key!r} is not an argument name")
        _check_literal(value, f"network_def.{key}", where)
        kwargs[key] = value
    if "_target_" not in network_def:
        raise ModelError(f"{where}: network_def has no _target_ (the MONAI network class)")
    return network_class(network_def["_target_"], where), kwargs


def build_network_def(network_def: Any, where: str) -> nn.Module:
    """The network a validated ``network_def`` describes (see :func:`check_network_def`).

    Raises
    ------
    ModelError
        For a refused ``network_def`` or arguments the class rejects.
    """
    cls, kwargs = check_network_def(network_def, where)
    try:
        return cls(**kwargs)
    except Exception as exc:  # constructors raise TypeError, ValueError, AssertionError, ...  # noqa: BLE001
        raise ModelError(f"{where}: cannot build {cls.__name__} from network_def ({type(exc).__name__}: "
                         f"{exc})") from None


def find_key(config: Any, key: str, path: str = "") -> Iterator[str]:
    """Dotted paths of every occurrence of ``key`` in nested dicts and lists of ``config``."""
    if isinstance(config, dict):
        for k, v in config.items():
            here = f"{path}.{k}" if path else str(k)
            if k == key:
                yield here
            yield from find_key(v, key, here)
    elif isinstance(config, list):
        for i, v in enumerate(config):
            yield from find_key(v, key, f"{path}[{i}]")
