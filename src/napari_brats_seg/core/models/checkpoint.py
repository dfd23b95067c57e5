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
``weights_sha256``           :func:`weights_hash` of the stored tensors, checked on load: a
                             mismatch (corrupted or altered weights) is refused. Files saved
                             before it was recorded (the older shipped weights among them)
                             have none and load unchecked.
===========================  ==============================================================

The tensors are the network's ``state_dict`` as :func:`~.families.build_network` builds it. A
spec of family ``bundle`` carries a MONAI ``network_def``: it is validated against the allowlist of
:mod:`.monai_nets` when the spec is read, so not even describing such a file runs code. So is the
post-processing a recipe chose (``provenance["postprocess"]``, e.g. ``{"keep_largest": true}``): only
known options with values of their types (:func:`~..postprocess.check_recorded`), else a
:class:`~..errors.ModelError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError
from .spec import FORMAT_VERSION, LoadedModel, ModelSpec

PathLike = str | os.PathLike
FORMAT_NAME = "napari-brats-seg"
SUFFIX = ".safetensors"
HASH_KEY = "weights_sha256"


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


def weights_hash(tensors: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of named tensors: name, dtype, shape and raw bytes of each, in sorted name order.

    Parameters
    ----------
    tensors
        Name -> ``torch.Tensor`` (any dtype, bfloat16 included); tensors are read one at a time.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _FileTensors(Mapping):
    """The tensors of an open safetensors file as a read-only mapping (read one at a time)."""

    def __init__(self, handle: Any) -> None:
        self._h, self._keys = handle, list(handle.keys())

    def __getitem__(self, name: str) -> Any:
        return self._h.get_tensor(name)

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def save_checkpoint(path: PathLike, network: nn.Module, spec: ModelSpec) -> Path:
    """Write ``network``'s weights and ``spec`` to a safetensors file, atomically.

    The metadata records :func:`weights_hash` of the tensors as written (``weights_sha256``), which
    :func:`load_checkpoint` verifies.

    Parameters
    ----------
    path
        Target file; ``.safetensors`` is appended when it has no suffix.
    network
        The module built by :func:`~.families.build_network` for ``spec``.
    spec
        Its metadata.

    Returns
    -------
    Path
        The file written.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file, save_model

    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "spec": spec.to_json()}
    tmps = []
    for _ in range(2):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmps.append(tmp)
    try:
        # save_model stores tied tensors once: the hash is over exactly the tensors it stored
        # (and records their other names in the metadata, kept as it wrote them)
        save_model(network, tmps[0], metadata=metadata)
        with safe_open(tmps[0], framework="pt") as fh:
            written = dict(fh.metadata() or metadata)
        tensors = load_file(tmps[0])
        save_file(tensors, tmps[1], metadata={**written, HASH_KEY: weights_hash(tensors)})
        os.replace(tmps[1], path)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def verify_weights(path: PathLike) -> bool:
    """Check a checkpoint's tensors against its recorded ``weights_sha256``.

    Returns
    -------
    bool
        True when the hash matches, False when none is recorded (files saved before it was).

    Raises
    ------
    ModelError
        When the hash differs (the weights are corrupted or were changed) or the tensors cannot be read.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            expected = (fh.metadata() or {}).get(HASH_KEY)
            if expected is None:
                return False
            actual = weights_hash(_FileTensors(fh))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot read the weights ({exc}); the file may be truncated") from None
    if actual != expected:
        raise ModelError(f"{path}: the weights are corrupted or were changed: hash {actual[:16]}... of the "
                         f"tensors, expected {expected[:16]}... as recorded when the file was saved")
    return True


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
        spec = ModelSpec.from_json(meta["spec"])
    except (ValueError, TypeError, ModelError) as exc:
        raise ModelError(f"{path}: invalid model metadata: {exc}") from None
    _check_recorded_postprocess(spec, path)
    if spec.family == "bundle":
        from .monai_nets import check_network_def

        if not isinstance(spec.arch, dict) or "network_def" not in spec.arch:
            raise ModelError(f"{path}: bundle family without a network_def")
        check_network_def(spec.arch["network_def"], str(path))
    return spec


def _check_recorded_postprocess(spec: ModelSpec, path: Path) -> None:
    """The provenance is a mapping, and its ``postprocess`` choice (when recorded) names known options
    with values of their types (:func:`~..postprocess.check_recorded`): refused at load, not at predict."""
    from ..errors import InferenceError
    from ..postprocess import check_recorded

    if not isinstance(spec.provenance, dict):
        raise ModelError(f"{path}: invalid model metadata: provenance must be a mapping, "
                         f"got {type(spec.provenance).__name__}")
    if "postprocess" not in spec.provenance:
        return
    try:
        check_recorded(spec.provenance["postprocess"])
    except InferenceError as exc:
        raise ModelError(f"{path}: the post-processing its provenance records is invalid: {exc}") from None


def load_checkpoint(path: PathLike, device: str = "cpu") -> LoadedModel:
    """Build the network a checkpoint describes and load its weights (eval mode).

    The tensors are checked against the recorded ``weights_sha256`` first (:func:`verify_weights`);
    a checkpoint saved before the hash was recorded loads without that check.

    Raises
    ------
    ModelError
        For a foreign or corrupt file, weights whose hash differs from the recorded one, an unknown
        family, a refused ``network_def``, or weights that do not fit the architecture.
    """
    from safetensors.torch import load_model

    from .families import build_network

    path = Path(path)
    spec = read_spec(path)
    verify_weights(path)
    try:
        network = build_network(spec)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:  # arguments of the wrong type in the recorded spec  # noqa: BLE001
        raise ModelError(f"{path}: cannot build the {spec.family} network from the recorded arguments "
                         f"({type(exc).__name__}: {exc})") from None
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
