"""Forward passes of a network over a prepared volume, for :mod:`.inference`.

- :func:`plan_windows`: sliding windows covering a volume with a given overlap.
- :class:`Runner`: one forward pass with progress, cancellation, precision and error checks, on the
  runtime its backend names (:mod:`.runtimes`).
- :func:`pass_3d` (the whole volume, or Gaussian-blended windows as MONAI's
  ``sliding_window_inference(mode="gaussian")`` and nnU-Net blend them), :func:`pass_2d` (slice
  batches of :data:`SLICE_BATCH`) and :func:`pass_volume` (networks that tile themselves,
  ``predict_volume``): logits ``(K, *shape)`` of one pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .device import Precision, run_context
from .errors import InferenceError
from .progress import CancelToken, ProgressCallback, check, report

#: Axial slices per forward pass of 2D models.
SLICE_BATCH = 8
#: Default fraction of a window that overlaps its neighbour.
DEFAULT_OVERLAP = 0.5

def plan_windows(shape: Sequence[int], window: Sequence[int], overlap: float = DEFAULT_OVERLAP
                 ) -> list[tuple[slice, ...]]:
    """Windows covering ``shape``: per axis, evenly spaced starts with at least ``overlap``.

    ``shape`` must be at least ``window`` on every axis (pad first).
    """
    if not 0 <= overlap < 1:
        raise InferenceError(f"overlap must be in [0, 1), got {overlap}")
    starts = []
    for size, win in zip(shape, window):
        if win >= size:
            starts.append([0])
            continue
        step = max(1, int(win * (1 - overlap)))
        n = math.ceil((size - win) / step) + 1
        starts.append(sorted({int(round(s)) for s in np.linspace(0, size - win, n)}))
    return [tuple(slice(s, s + min(w, size)) for s, w, size in zip(st, window, shape))
            for st in itertools.product(*starts)]


def _gaussian(window: Sequence[int]) -> torch.Tensor:
    from monai.data.utils import compute_importance_map

    return compute_importance_map(tuple(window), mode="gaussian", sigma_scale=0.125, device="cpu").float()


def round_up(n: int, k: int) -> int:
    return int(math.ceil(n / k) * k)


class Runner:
    """Runs forward passes with progress, cancellation, precision and error wrapping.

    ``backend`` (a :mod:`.runtimes` backend) runs each pass; by default the torch network itself
    (:class:`~.runtimes.backends.TorchBackend`). Networks that tile themselves always run on torch.
    """

    def __init__(self, network: Any, device: torch.device, precision: Precision,
                 on_progress: ProgressCallback | None, cancel: CancelToken | None, backend: Any = None) -> None:
        from .runtimes.backends import TorchBackend

        self.network, self.device, self.precision = network, device, precision
        self.on_progress, self.cancel = on_progress, cancel
        self.backend = backend if backend is not None else TorchBackend(network, device, precision)
        self.done, self.total, self.units = 0, 0, 0

    def step(self, message: str) -> None:
        self.done += 1
        report(self.on_progress, self.done, self.total, message)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One pass of ``x`` (CPU float32) through the network; float32 CPU logits."""
        check(self.cancel)
        out = self.backend(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise InferenceError(f"network returned {type(out).__name__}, not a tensor")
        if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:]:
            raise InferenceError(f"network mapped input {tuple(x.shape)} to {tuple(out.shape)}; "
                                 "it must keep the batch and spatial sizes")
        self.units += 1
        return out.to("cpu").to(torch.float32, memory_format=torch.contiguous_format)  # one copy, not two


def pass_3d(run: Runner, x: np.ndarray, window: tuple[int, ...], overlap: float, tag: str) -> np.ndarray:
    """Logits ``(K, *shape)`` of one 3D pass, whole-volume or Gaussian-blended windows."""
    shape = x.shape[1:]
    slices = plan_windows(shape, window, overlap)
    xt = torch.from_numpy(x)[None]
    if len(slices) == 1:
        out = run.forward(xt)[0]
        run.step(f"{tag}whole volume")
        return out.numpy()
    imp = _gaussian(window)
    acc: torch.Tensor | None = None
    weight = torch.zeros(shape, dtype=torch.float32)
    for i, sl in enumerate(slices):
        out = run.forward(xt[(slice(None), slice(None)) + sl].contiguous())[0]
        if acc is None:
            acc = torch.zeros((out.shape[0],) + tuple(shape), dtype=torch.float32)
        acc[(slice(None),) + sl] += out * imp
        weight[sl] += imp
        run.step(f"{tag}window {i + 1}/{len(slices)}")
    assert acc is not None
    return (acc / weight).numpy()


def pass_2d(run: Runner, x: np.ndarray, axis: int, tag: str) -> np.ndarray:
    """Logits ``(K, *shape)`` of slice-wise prediction along model axis ``axis``."""
    moved = np.moveaxis(x, axis + 1, 0)  # (n, C, h, w)
    n = moved.shape[0]
    outs = []
    for _b, start in enumerate(range(0, n, SLICE_BATCH)):
        batch = torch.from_numpy(np.ascontiguousarray(moved[start:start + SLICE_BATCH]))
        outs.append(run.forward(batch).numpy())
        run.step(f"{tag}slices {start + 1}-{min(start + SLICE_BATCH, n)}/{n}")
    logits = np.concatenate(outs, axis=0)  # (n, K, h, w)
    return np.moveaxis(logits, 0, axis + 1)


def pass_volume(run: Runner, x: np.ndarray, member: int, members: int, tag: str,
                 place: dict[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """Logits of a network that tiles itself (``predict_volume``); ``place`` gives ``origin`` and
    ``image_shape`` (where ``x`` lies in the whole image) to networks that accept them."""

    def relay(done: int, total: int, message: str = "") -> None:
        run.total = members * total
        run.done = member * total + done
        report(run.on_progress, run.done, run.total, f"{tag}{message}")

    xt = torch.from_numpy(x)[None].to(run.device)
    with run_context(run.device, run.precision):
        out = run.network.predict_volume(xt, on_progress=relay, cancel=run.cancel, **(place or {}))
    if isinstance(out, (list, tuple)):
        out = out[0]
    if out.shape[2:] != xt.shape[2:]:
        raise InferenceError(f"predict_volume mapped {tuple(xt.shape)} to {tuple(out.shape)}")
    run.units += 1
    return out[0].float().cpu().numpy()


def activate(logits: np.ndarray, output: str) -> np.ndarray:
    t = torch.from_numpy(logits)
    return (torch.softmax(t, dim=0) if output == "labels" else torch.sigmoid(t)).numpy()


__all__ = ["DEFAULT_OVERLAP", "SLICE_BATCH", "Runner", "activate", "pass_2d", "pass_3d", "pass_volume", "plan_windows",
           "round_up"]
