"""Choosing the runtime of a network: :func:`choose` names it, :func:`select` builds its backend.

``"auto"`` looks the CPU kind (:func:`~.cpu.cpu_kind`) and the family up in :data:`AUTO_TABLE`, the runtime measured
fastest on such a CPU among those whose labels agree with torch fp32 at >= 0.999 Dice per region on
real cases (``bench/bench_runtimes.py``; the figures are in the README, "Runtimes"), for the families
measured (:data:`AUTO_FAMILIES`); anything else, networks that tile themselves and networks on a GPU
stay on torch (a self-tiling network asked to run elsewhere runs on torch, with a logged notice).
When the preferred runtime is not installed, auto falls back to torch with one logged notice. A
runtime asked for by name that is not installed is a :class:`RuntimeNotInstalled` error.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..device import Precision
from ..errors import InferenceError
from ..models.spec import ModelSpec
from . import cache, export
from .backends import OnnxRuntimeBackend, OpenVinoBackend, TorchBackend
from .cpu import RUNTIMES, available_runtimes, cpu_kind, installed_runtimes, runtime_version

log = logging.getLogger("napari_brats_seg.runtimes")
T = TypeVar("T")

#: CPU kind -> family -> the runtime ``"auto"`` picks (measured, see the module docstring); a kind or a
#: family not listed (not measured) runs on torch.
AUTO_TABLE: dict[str, dict[str, str]] = {
    "avx512_bf16": {"unet3d": "torch", "segresnet": "torch"},  # torch's bf16 is faster there (README)
    # the cascade: OpenVINO held to AVX2 agrees (Dice 1.0000 on 2 cases) and is faster than torch; ONNX
    # Runtime was faster still but ran AVX-512 kernels (it has no ISA switch), not an AVX2 measurement
    "avx2": {"unet3d": "openvino", "segresnet": "torch", "cascade": "openvino"},
}
#: Families whose agreement and speed were measured under the other runtimes.
AUTO_FAMILIES: frozenset[str] = frozenset({"unet3d", "segresnet", "cascade"})
#: What to tell a user who lacks a runtime.
INSTALL_HINT = 'pip install "napari-brats-seg[fast]"'

#: Folder of OpenVINO's compiled-model cache inside an OpenVINO entry.
COMPILED_DIR = "compiled"
#: Backends kept loaded in this process (sessions and compiled models reused across cases).
LOADED_BACKENDS = 2

_notified: set[str] = set()
_loaded: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


class RuntimeNotInstalled(InferenceError):
    """A runtime asked for by name is not installed."""


def choose(runtime: str, spec: ModelSpec, device: torch.device | str = "cpu",
           available: Sequence[str] | None = None) -> str:
    """The runtime that runs ``spec``'s network: ``runtime`` itself, or auto's pick.

    Parameters
    ----------
    runtime
        ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``.
    spec
        The model's spec (family, dims, self-tiling).
    device
        Where torch would run; exported runtimes run on the CPU only.
    available
        The installed runtimes (default :func:`~.cpu.available_runtimes`).

    Raises
    ------
    RuntimeNotInstalled
        ``runtime`` is named but not installed.
    InferenceError
        An unknown name, or an exported runtime asked for with a GPU device.
    """
    key = require(runtime, available)
    dev = torch.device(device)
    if key == "auto":
        if dev.type != "cpu" or spec.self_tiling or spec.family not in AUTO_FAMILIES:
            return "torch"
        kind = cpu_kind()
        pick = AUTO_TABLE.get(kind, {}).get(spec.family, "torch")
        if pick != "torch" and pick not in (available_runtimes() if available is None else available):
            notice_once(f"missing:{pick}", "runtime %s (fastest measured on this %s CPU) is not installed; running on "
                    "torch (%s)", pick, kind, INSTALL_HINT)
            return "torch"
        return pick
    if key != "torch":
        if dev.type != "cpu":
            raise InferenceError(f"runtime {key!r} runs on the CPU; use device cpu (or runtime torch on {dev})")
        if spec.self_tiling:
            notice_once(f"self-tiling:{spec.name}", "model %s tiles itself and runs on torch only, not %s", spec.name, key)
            return "torch"
    return key


def require(runtime: str, available: Sequence[str] | None = None) -> str:
    """``runtime`` checked before any work: a known name (``"auto"`` included) and, unless auto, installed.

    Raises
    ------
    RuntimeNotInstalled
        ``runtime`` is named but not installed.
    InferenceError
        An unknown name.
    """
    key = str(runtime).lower().strip()
    if key not in ("auto", *RUNTIMES):
        raise InferenceError(f"unknown runtime {runtime!r}; use auto, {', '.join(RUNTIMES)}")
    if key == "auto":  # nothing to check, and nothing imported: the Segment widget calls this in the GUI thread
        return key
    have = tuple(installed_runtimes() if available is None else available)
    if key not in have:
        raise RuntimeNotInstalled(f"runtime {key!r} is not installed; install it with: {INSTALL_HINT}")
    return key


def notice_once(key: str, message: str, *args: Any) -> None:
    """Log ``message`` once per process for ``key`` (a warning on the ``napari_brats_seg.runtimes`` logger)."""
    if key not in _notified:
        _notified.add(key)
        log.warning(message, *args)


def _fields(name: str, spec: ModelSpec, weights: str, dynamic: bool, shape: tuple[int, ...] | None,
            precision: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"runtime": "onnx" if name == "onnx" else name, "weights": weights,
                              "model": spec.name, "family": spec.family, "arch": spec.arch,
                              "torch": runtime_version("torch"), "shape": None if dynamic else shape}
    if name != "onnx":
        fields.update(version=runtime_version(name), cpu=cpu_kind(), precision=precision)
    return fields


def _onnx_entry(core: Any, spec: ModelSpec, weights: str, dynamic: bool, shape: tuple[int, ...] | None,
                multiple: int, root: Path | None, fresh: bool = False) -> Path:
    fields = _fields("onnx", spec, weights, dynamic, shape, "fp32")

    def build(folder: Path) -> None:
        ex = export.example_input(len(spec.channels), spec.dims, multiple, None if dynamic else shape)
        export.export_onnx(core, ex, folder / export.ONNX_FILE, dynamic)

    return (cache.rebuild if fresh else cache.entry)(fields, build, root) / export.ONNX_FILE


def _load(name: str, core: Any, spec: ModelSpec, weights: str, dynamic: bool, shape: tuple[int, ...] | None,
          multiple: int, precision: str, root: Path | None, fresh: bool) -> Any:
    onnx_path = _onnx_entry(core, spec, weights, dynamic, shape, multiple, root, fresh)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(onnx_path, multiple)
    fields = _fields(name, spec, weights, dynamic, shape, precision)

    def build(folder: Path) -> None:
        export.convert_openvino(onnx_path, folder / export.OPENVINO_FILE)

    folder = (cache.rebuild if fresh else cache.entry)(fields, build, root)
    return OpenVinoBackend(folder / export.OPENVINO_FILE, multiple, "bf16" if precision == "bf16" else "f32",
                           compiled_dir=folder / COMPILED_DIR)


def select(runtime: str, spec: ModelSpec, network: Any, *, device: torch.device | str = "cpu",
           precision: Precision | None = None, weights_id: str | None = None,
           shape: tuple[int, ...] | None = None, available: Sequence[str] | None = None,
           cache_dir: Path | None = None) -> Any:
    """The backend that runs ``network`` (see :func:`choose`), its export taken from the cache.

    Parameters
    ----------
    runtime, spec, device, available
        As :func:`choose`.
    network
        The torch network (eval mode).
    precision
        The torch precision; OpenVINO honours its bf16, ONNX Runtime runs fp32.
    weights_id
        The weights' identity (:func:`~..models.registry.weights_id`); hashed from ``network`` if None.
    shape
        The input's spatial shape, needed for networks that export for one shape only.
    cache_dir
        The cache folder (default :func:`~.cache.cache_root`).

    Raises
    ------
    RuntimeNotInstalled, InferenceError
        As :func:`choose`; an export that fails twice (also after rebuilding its cache entry).
    """
    prec = precision or Precision()
    name = choose(runtime, spec, device, available)
    if name == "torch":
        return TorchBackend(network, torch.device(device), prec)
    core, multiple, dynamic = split_padding_or_fail(network, spec, shape)
    if weights_id is None:
        from ..models.checkpoint import weights_hash

        weights_id = weights_hash(network.state_dict())
    root = Path(cache_dir) if cache_dir is not None else None
    args = (name, core, spec, weights_id, dynamic, None if dynamic else tuple(shape or ()), multiple, prec.dtype, root)
    key = (args[0], args[3], args[4], args[5], args[7], str(root), str(cache.cache_root()))
    if key in _loaded:  # the next case of a cohort or of a napari session: no new session or compilation
        _loaded.move_to_end(key)
        return _loaded[key]
    backend = load_or_rebuild(lambda fresh: _load(*args, fresh=fresh), f"runtime {name}",
                              f"runtime {name} cannot run model {spec.name}")
    _loaded[key] = backend
    while len(_loaded) > LOADED_BACKENDS:
        _loaded.popitem(last=False)
    return backend


def load_or_rebuild(attempt: Callable[[bool], T], what: str, failure: str) -> T:
    """``attempt(False)`` on the cache entries as they are; if that fails (a corrupt or stale entry),
    logged as ``what``, ``attempt(True)`` once on rebuilt entries.

    Raises
    ------
    InferenceError
        ``"<failure>: <error>"`` when the rebuilt entries fail too.
    """
    try:
        return attempt(False)
    except Exception as first:  # noqa: BLE001 - a corrupt or stale entry: rebuild it once
        log.warning("%s: cached export unusable (%s: %s); exporting again", what, type(first).__name__,
                    str(first).splitlines()[0] if str(first) else "")
        try:
            return attempt(True)
        except Exception as exc:
            raise InferenceError(f"{failure}: {type(exc).__name__}: {exc}") from exc


def forget_loaded() -> None:
    """Drop the backends kept in memory (the next :func:`select` loads from the disk cache again)."""
    _loaded.clear()


def split_padding_or_fail(network: Any, spec: ModelSpec, shape: tuple[int, ...] | None) -> tuple[Any, int, bool]:
    """:func:`~.export.split_padding`, insisting on ``shape`` for a network exported per shape."""
    if not isinstance(network, torch.nn.Module):
        raise InferenceError(f"model {spec.name} is not a torch module; it runs on torch only")
    core, multiple, dynamic = export.split_padding(network)
    if not dynamic and shape is None:
        raise InferenceError(f"model {spec.name} exports for one input shape; give its shape")
    return core, multiple, dynamic


__all__ = ["AUTO_FAMILIES", "AUTO_TABLE", "INSTALL_HINT", "RuntimeNotInstalled", "choose", "forget_loaded", "require",
           "select"]
