"""Where and in which precision a network runs: device choice, the CPU fast path, OOM detection.

- :func:`resolve_device`: ``"auto"`` picks CUDA, then Apple MPS, then the CPU; an explicit device
  that is not there raises :class:`~.errors.InferenceError`.
- :func:`choose_precision`: on a CPU with native bf16 (AMX or AVX-512 BF16) 3D networks of the
  families whose bf16 labels were measured to agree with fp32 (>= 0.99 Dice per region, see
  :data:`BF16_VALIDATED_FAMILIES`) run under bf16 autocast with ``channels_last_3d`` tensors;
  anything else runs in fp32 unless bf16 is asked for. CUDA runs in fp32 (its speed is rarely
  the bottleneck; agreement is not measured there).
- :func:`run_context`: the context manager that applies a :class:`Precision`.
- :func:`is_out_of_memory`: recognises the allocator failures that a retry with smaller windows
  can cure.

This module imports torch; the reader path never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InferenceError

#: Families whose bf16 + channels-last labels agree with fp32 at >= 0.99 Dice per region on real
#: BraTS cases with *trained* weights, and run faster where the CPU has native bf16
#: (``bench/bench_precision.py``, ``bench/bench_segresnet.py``; the agreement and speed figures, with the
#: CPU they were measured on, are in the README, "Segmenting cases"): the CaPTk DeepMedic, the shipped
#: ``unet3d-default`` and a SegResNet in the bundle's configuration. (Seeded *random* SegResNet weights,
#: whose logits hover near the threshold, agree less: a random network is not the measure.) Other
#: families (2D slices, cascades, MONAI ``bundle`` networks) stay fp32 unless asked (``precision="bf16"``).
BF16_VALIDATED_FAMILIES: frozenset[str] = frozenset({"deepmedic", "unet3d", "segresnet"})

_DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs.

    Attributes
    ----------
    dtype
        ``"fp32"`` or ``"bf16"`` (autocast).
    channels_last
        Whether 5D tensors and the network use ``torch.channels_last_3d``.
    """

    dtype: str = "fp32"
    channels_last: bool = False

    @property
    def label(self) -> str:
        """A short description, e.g. ``"bf16+channels_last_3d"``."""
        return self.dtype + ("+channels_last_3d" if self.channels_last else "")


def mps_available() -> bool:
    """True when Apple's Metal backend is built and usable."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The device to run on.

    Parameters
    ----------
    name
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` / ``"cuda:N"``, ``"mps"``, or a
        ``torch.device``.

    Raises
    ------
    InferenceError
        For an unknown name or a device this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    key = str(name).lower().strip()
    if key == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = key.split(":", 1)[0]
    if base not in _DEVICES:
        raise InferenceError(f"unknown device {name!r}; use one of auto, cpu, cuda, cuda:N, mps")
    if base == "cuda" and not torch.cuda.is_available():
        raise InferenceError("device 'cuda' asked for, but torch sees no CUDA GPU (use --device auto or cpu)")
    if base == "mps" and not mps_available():
        raise InferenceError("device 'mps' asked for, but the Metal backend is not available")
    try:
        return torch.device(key)
    except RuntimeError as exc:
        raise InferenceError(f"bad device {name!r}: {exc}") from None


#: oneDNN ISA limits (``ONEDNN_MAX_CPU_ISA``) below which bf16 is emulated, not native.
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (x86 AMX-BF16 or AVX-512 BF16; Linux flags).

    An ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) limit below AVX-512 BF16 counts as no native
    bf16, since oneDNN then emulates it: the way to try the AVX2-only code paths on a newer CPU.
    """
    if onednn_isa_limit() in _ISA_WITHOUT_BF16:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def onednn_isa_limit() -> str:
    """The ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) limit, upper case; ``""`` when unset."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (``/proc/cpuinfo``); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def choose_precision(device: torch.device, family: str, dims: int, precision: str = "auto") -> Precision:
    """The precision a network of ``family`` runs in on ``device``.

    Parameters
    ----------
    device
        Where it runs.
    family
        The model family (``ModelSpec.family``).
    dims
        3 for volumetric networks, 2 for slice-wise ones.
    precision
        ``"auto"`` (bf16 + channels-last on a bf16-capable CPU for validated 3D families, else
        fp32), ``"fp32"`` or ``"bf16"`` (forced, for measurements).

    Raises
    ------
    InferenceError
        For an unknown ``precision``.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise InferenceError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "fp32":
        return Precision()
    if precision == "bf16":
        return Precision("bf16", channels_last=dims == 3 and device.type == "cpu")
    if device.type == "cpu" and dims == 3 and family in BF16_VALIDATED_FAMILIES and cpu_has_native_bf16():
        return Precision("bf16", channels_last=True)
    return Precision()


@contextlib.contextmanager
def run_context(device: torch.device, precision: Precision) -> Iterator[None]:
    """``torch.inference_mode`` plus bf16 autocast when ``precision`` asks for it."""
    with torch.inference_mode():
        if precision.dtype == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocator failure (CUDA/MPS out of memory, or a CPU allocation that failed)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "failed to allocate" in text
                                              or "can't allocate memory" in text)


def empty_cache(device: torch.device) -> None:
    """Give cached GPU memory back after a failure."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
