"""Keep freed memory in the process: glibc allocator settings that make whole-volume inference faster.

A BraTS case makes arrays of 37-300 MB (four channels, their normalised copy, the network's feature
maps, the logits). glibc's ``malloc`` serves blocks that large with ``mmap`` and hands them back to the
operating system on ``free``, so every new array is fresh memory that the kernel must fault in page by
page. On the virtual machines this project runs on, those page faults can cost a large share of a
case's time (``bench/bench_segresnet.py`` measures it with and without the settings below; the
figures, with the CPU they were taken on, are in the README, "Memory: the allocator setting").

:func:`keep_freed_memory` sets, once per process, three ``mallopt`` parameters:

- ``M_MMAP_THRESHOLD`` 1 GiB: large blocks come from the heap, not from a fresh ``mmap`` each;
- ``M_TRIM_THRESHOLD`` 2 GiB (the largest value ``mallopt`` takes): freed heap memory is not returned
  to the system, so the next array reuses pages that are already mapped;
- ``M_ARENA_MAX`` 1: threads share the main heap (a worker thread's own arena is capped at 64 MB per
  heap and would go back to ``mmap`` for large blocks; inference in napari runs in a worker thread).

The price: the process keeps its peak memory after a case (a few hundred MB more peak resident
memory than with the defaults for a whole-volume case) and reuses it for the next. Set the environment
variable ``BRATS_SEG_KEEP_FREED_MEMORY=0`` to leave glibc's defaults. Elsewhere than Linux with glibc
this does nothing. Torch and numpy are not needed here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: ``mallopt`` parameter numbers (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: The values set (bytes, bytes, arenas).
SETTINGS: tuple[tuple[int, int], ...] = (
    (M_MMAP_THRESHOLD, 1 << 30),
    (M_TRIM_THRESHOLD, 2**31 - 1),
    (M_ARENA_MAX, 1),
)
#: Environment variable that turns the settings off (``0``, ``no``, ``false``, ``off``).
ENV_VAR = "BRATS_SEG_KEEP_FREED_MEMORY"

_state: dict[str, bool | None] = {"applied": None}


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``, once per process.

    Returns
    -------
    bool
        True when the settings are in effect (applied now or by an earlier call); False when they
        are turned off by :data:`ENV_VAR`, the platform has no glibc, or glibc refused a value.
    """
    if _state["applied"] is not None:
        return bool(_state["applied"])
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "no", "false", "off"):
        _state["applied"] = False
        return False
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            mallopt.restype = ctypes.c_int
            ok = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    _state["applied"] = ok
    return ok


#: Environment variable capping the memory :func:`available_bytes` reports (e.g. ``8G``, ``500M``).
ENV_MEMORY_LIMIT = "BRATS_SEG_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def available_bytes() -> int | None:
    """Memory the system can still give without swapping (``MemAvailable`` of ``/proc/meminfo``), capped
    by ``$BRATS_SEG_MEMORY_LIMIT``; None when neither is known (then nothing is sized to it)."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    limit = os.environ.get(ENV_MEMORY_LIMIT, "").strip().upper().removesuffix("B")
    if limit:
        try:
            cap = int(float(limit[:-1] if limit[-1:] in _UNITS else limit) * _UNITS.get(limit[-1:], 1))
        except ValueError:
            cap = None
        if cap is not None and cap > 0:
            avail = cap if avail is None else min(avail, cap)
    return avail


__all__ = ["ENV_MEMORY_LIMIT", "ENV_VAR", "SETTINGS", "available_bytes", "keep_freed_memory"]
