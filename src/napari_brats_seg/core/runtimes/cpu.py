"""What the CPU offers and which inference runtimes are installed.

- :func:`cpu_kind`: the CPU's vector class, from its flags (:func:`~..device.cpu_flags`) capped by an
  ``ONEDNN_MAX_CPU_ISA`` limit (the way to try the AVX2-only paths on a newer CPU): ``"amx"``,
  ``"avx512_bf16"``, ``"avx512"``, ``"avx2"`` or ``"other"`` (older x86, ARM).
- :func:`available_runtimes`: ``"torch"`` always, ``"onnxruntime"`` and ``"openvino"`` when they import.
  ``$BRATS_SEG_RUNTIMES`` (a comma-separated list, e.g. ``torch``) restricts what counts as installed,
  to see how the plugin behaves without a runtime.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os

from ..device import cpu_flags, onednn_isa_limit

#: The runtimes, in the order they are offered.
RUNTIMES: tuple[str, ...] = ("torch", "onnxruntime", "openvino")
#: Restricts which runtimes count as installed (comma-separated names).
ENV_RUNTIMES = "BRATS_SEG_RUNTIMES"
#: CPU kinds from the least to the most capable.
CPU_KINDS: tuple[str, ...] = ("other", "avx2", "avx512", "avx512_bf16", "amx")

#: ``ONEDNN_MAX_CPU_ISA`` values -> the most capable kind they allow.
_ISA_CAP = {
    "SSE41": "other", "AVX": "other",
    "AVX2": "avx2", "AVX2_VNNI": "avx2", "AVX2_VNNI_2": "avx2",
    "AVX512_CORE": "avx512", "AVX512_CORE_VNNI": "avx512",
    "AVX512_CORE_BF16": "avx512_bf16", "AVX512_CORE_FP16": "avx512_bf16",
}


def flag_kind(flags: frozenset[str] | set[str]) -> str:
    """The CPU kind that a set of Linux CPU flags describes."""
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags and "fma" in flags:
        return "avx2"
    return "other"


def cpu_kind() -> str:
    """This CPU's kind (see the module docstring), capped by ``ONEDNN_MAX_CPU_ISA``."""
    kind = flag_kind(cpu_flags())
    cap = _ISA_CAP.get(onednn_isa_limit())
    if cap is not None and CPU_KINDS.index(cap) < CPU_KINDS.index(kind):
        return cap
    return kind


def cpu_summary() -> dict[str, bool | str]:
    """The flags that matter here (AVX2, AVX-512F, AVX-512 BF16, AMX), the ISA limit and the kind."""
    flags = cpu_flags()
    return {"avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx": "amx_bf16" in flags, "isa_limit": onednn_isa_limit() or "none", "kind": cpu_kind()}


@functools.cache
def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install is as good as none
        return False
    return True


def runtime_version(name: str) -> str:
    """The installed version of runtime ``name`` (``"torch"`` included); ``"?"`` when unknown."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


#: The package every exported runtime needs too: ``torch.onnx.export`` writes its model through it.
EXPORTER = "onnx"


def installed_runtimes() -> tuple[str, ...]:
    """Like :func:`available_runtimes`, from the installed packages only, without importing them (cheap:
    for checks in a GUI thread; a broken install then fails when its backend is built, in the worker)."""
    names = _allowed()
    return tuple(r for r in RUNTIMES
                 if r in names and (r == "torch" or all(importlib.util.find_spec(m) is not None
                                                        for m in (r, EXPORTER))))


def available_runtimes() -> tuple[str, ...]:
    """The runtimes that are installed (and allowed by ``$BRATS_SEG_RUNTIMES``), in :data:`RUNTIMES` order."""
    names = _allowed()
    return tuple(r for r in RUNTIMES
                 if r in names and (r == "torch" or (_importable(r) and _importable(EXPORTER))))


def _allowed() -> set[str]:
    """The runtimes ``$BRATS_SEG_RUNTIMES`` allows (all when unset)."""
    allowed = os.environ.get(ENV_RUNTIMES)
    return {n.strip().lower() for n in allowed.split(",")} if allowed else set(RUNTIMES)


__all__ = ["CPU_KINDS", "ENV_RUNTIMES", "RUNTIMES", "available_runtimes", "cpu_kind", "cpu_summary", "flag_kind",
           "installed_runtimes", "runtime_version"]
