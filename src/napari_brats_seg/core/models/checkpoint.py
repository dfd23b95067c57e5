"""The one checkpoint format: safetensors weights with the :class:`ModelSpec` JSON in its metadata.

A checkpoint is a ``.safetensors`` file (https://github.com/huggingface/safetensors): a JSON header
and raw tensor bytes, so loading executes no code (unlike a pickle). Its string metadata holds

===========================  ==============================================================
key                          value
===========================  ==============================================================
``format``                   ``"napari-brats-seg"``
``format_version``           :data:`~.spec.FORMAT_VERSION` as a string
``spec``                     :meth:`ModelSpec.to_json`: family and constructor arguments,
                             channel order, orientation, output kind, classes/regions, label
                             scheme, normalisation, patch size, spacing, provenance
===========================  ==============================================================

The tensors are the network's ``state_dict`` as :func:`~.registry.build_network` builds it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch import nn

from ..errors import ModelError
from .spec import FORMAT_VERSION, LoadedModel, ModelSpec

PathLike = str | os.PathLike
FORMAT_NAME = "napari-brats-seg"
SUFFIX = ".safetensors"


def _foreign_reason(path: Path) -> str:
    """A user-facing guess of what a non-safetensors file is."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if head.startswith(b"PK\x03\x04"):
        return ("is a PyTorch pickle/zip checkpoint, which is not loaded because unpickling can execute code; "
                "re-save its weights with napari_brats_seg.core.models.checkpoint.save_checkpoint")
    if head[:1] == b"\x80":
        return "is a Python pickle, which is not loaded because unpickling can execute code"
    if head.startswith(b"\x89HDF"):
        return "is an HDF5 (Keras) file, not a safetensors checkpoint"
    if len(head) < 8:
        return "is too short to be a safetensors checkpoint"
    return "is not a valid safetensors checkpoint (corrupt, truncated or another format)"


def save_checkpoint(path: PathLike, network: nn.Module, spec: ModelSpec) -> Path:
    """Write ``network``'s weights and ``spec`` to a safetensors file, atomically.

    Parameters
    ----------
    path
        Target file; ``.safetensors`` is appended when it has no suffix.
    network
        The module built by :func:`~.registry.build_network` for ``spec``.
    spec
        Its metadata.

    Returns
    -------
    Path
        The file written.
    """
    from safetensors.torch import save_model

    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "spec": spec.to_json()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_model(network, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_spec(path: PathLike) -> ModelSpec:
    """The :class:`ModelSpec` of a checkpoint, reading only its header (fast, no tensors).

    Raises
    ------
    ModelError
        When the file is missing, foreign, corrupt, or lacks this project's metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad headers  # noqa: BLE001
        raise ModelError(f"{path} {_foreign_reason(path)} ({exc})") from None
    if meta.get("format") != FORMAT_NAME or "spec" not in meta:
        raise ModelError(f"{path} is a safetensors file without {FORMAT_NAME} model metadata "
                         f"(found keys: {', '.join(sorted(meta)) or 'none'})")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        version = -1
    if not 1 <= version <= FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format version {meta.get('format_version')!r} is not supported "
                         f"(this version reads 1..{FORMAT_VERSION}); update napari-brats-seg")
    try:
        return ModelSpec.from_json(meta["spec"])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: invalid model metadata: {exc}") from None


def load_checkpoint(path: PathLike, device: str = "cpu") -> LoadedModel:
    """Build the network a checkpoint describes and load its weights (eval mode).

    Raises
    ------
    ModelError
        For a foreign or corrupt file, unknown family, or weights that do not fit the architecture.
    """
    from safetensors.torch import load_model

    from .registry import build_network

    path = Path(path)
    spec = read_spec(path)
    network = build_network(spec)
    try:
        # load_model restores tensors that save_model stored once for several (tied) names
        missing, unexpected = load_model(network, str(path), strict=False, device=str(device))
    except RuntimeError as exc:  # load_state_dict's shape mismatch
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path}: the weights do not fit the {spec.family} network with the recorded "
                         f"arguments: {first}") from None
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot read the weights ({exc}); the file may be truncated") from None
    if missing or unexpected:
        raise ModelError(f"{path}: the weights do not fit the {spec.family} network with the recorded arguments "
                         f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    network.to(device).eval()
    return LoadedModel(spec=spec, network=network, source=str(path))
