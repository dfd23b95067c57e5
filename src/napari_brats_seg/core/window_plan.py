"""How large a window a CPU pass can take, and how many go per forward pass.

The window of a padded input is the whole of it, or the model's ``patch_size`` when it does not fit;
on the CPU it shrinks (as on out of memory) until a pass fits the available memory
(:func:`~.memory.available_bytes`, ``$BRATS_SEG_MEMORY_LIMIT``), and as many windows go per pass as
fit. Used by :func:`~.inference.run_network`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .device import Precision
from .memory import available_bytes
from .models.spec import ModelSpec
from .passes import round_up

#: Smallest window edge the out-of-memory fallback shrinks to.
MIN_WINDOW = 32


def shrink(window: tuple[int, ...], k: int) -> tuple[int, ...] | None:
    """``window`` halved on every edge over :data:`MIN_WINDOW` (kept divisible by ``k``), None when none is."""
    new = tuple(max(round_up(max(w // 2, 1), k), round_up(MIN_WINDOW, k)) if w > MIN_WINDOW else w
                for w in window)
    return new if new != window else None


def whole_or_patch(shape: Sequence[int], spec: ModelSpec, self_tiling: bool) -> tuple[int, ...]:
    """The window of a padded input: the whole of it, or ``spec.patch_size`` when it does not fit."""
    if (spec.patch_size is None or spec.dims == 2 or self_tiling
            or all(int(s) <= int(w) for s, w in zip(shape, spec.patch_size))):
        return tuple(int(s) for s in shape)
    return tuple(int(w) for w in spec.patch_size)


#: Peak bytes per voxel of a 3D window, per feature map of the network's first level, in fp32 (half in
#: bf16): measured on a whole-volume SegResNet pass (16 filters, 240 x 240 x 160 voxels: 5.0 GB above
#: the process's baseline, README "Runtimes"). Rough on purpose: it only has to keep a pass out of swap.
BYTES_PER_VOXEL_FILTER = 34
#: Share of the available memory a pass may plan to use.
MEMORY_SHARE = 0.8


def first_filters(spec: ModelSpec) -> int:
    """Feature maps of the network's first level, from its arch (32 when the arch does not say)."""
    arch = dict(spec.arch or {})
    if isinstance(arch.get("network_def"), Mapping):  # a MONAI bundle's network arguments
        arch = {**arch["network_def"], **arch}
    for key in ("init_filters", "filters", "features", "channels"):
        val = arch.get(key)
        if isinstance(val, (list, tuple)) and val:
            return int(val[0])
        if isinstance(val, (int, float)) and val > 0:
            return int(val)
    return 32


def fit_memory(window: tuple[int, ...], spec: ModelSpec, device: torch.device, prec: Precision
                ) -> tuple[tuple[int, ...], str | None]:
    """``window`` shrunk (as on out of memory) until a CPU pass fits the available memory; the message
    saying so, or None. GPUs keep their out-of-memory fallback; networks that tile themselves and 2D
    models are left alone."""
    avail = available_bytes()
    if device.type != "cpu" or spec.dims != 3 or spec.self_tiling or avail is None:
        return window, None
    per_voxel = BYTES_PER_VOXEL_FILTER * first_filters(spec) * (0.5 if prec.dtype == "bf16" else 1.0)
    start, budget = window, MEMORY_SHARE * avail
    while math.prod(window) * per_voxel > budget:
        smaller = shrink(window, max(int(spec.divisible_by or 1), 1))
        if smaller is None:
            break
        window = smaller
    if window == start:
        return window, None
    return window, (f"a window of {start} needs about {math.prod(start) * per_voxel / 1e9:.1f} GB and "
                    f"{avail / 1e9:.1f} GB are available; using sliding windows of {window}")


def window_batch(window: tuple[int, ...], spec: ModelSpec, device: torch.device, prec: Precision, most: int) -> int:
    """Windows per forward pass: ``most`` (:data:`~.passes.WINDOW_BATCH`), fewer when that many
    ``window`` windows do not fit the available CPU memory (sized as :func:`fit_memory` sizes one)."""
    avail = available_bytes()
    if device.type != "cpu" or spec.dims != 3 or spec.self_tiling or avail is None:
        return most
    per_window = math.prod(window) * BYTES_PER_VOXEL_FILTER * first_filters(spec) * (
        0.5 if prec.dtype == "bf16" else 1.0)
    return max(1, min(most, int(MEMORY_SHARE * avail // max(per_window, 1))))
