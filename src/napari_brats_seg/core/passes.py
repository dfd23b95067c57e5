"""Forward passes of a network over a prepared volume, for :mod:`.inference`.

- :func:`plan_windows`: sliding windows covering a volume with a given overlap.
- :class:`Runner`: one forward pass with progress, cancellation, precision and error checks, on the
  runtime its backend names (:mod:`.runtimes`).
- :func:`pass_3d` (the whole volume, or Gaussian-blended windows as MONAI's
  ``sliding_window_inference(mode="gaussian")`` and nnU-Net blend them, up to :data:`WINDOW_BATCH`
  windows per forward pass), :func:`pass_2d` (slice batches of at most :data:`SLICE_BATCH`) and
  :func:`pass_volume` (networks that tile themselves, ``predict_volume``): logits ``(K, *shape)`` of
  one pass.

Batches are balanced (:func:`batch_size`: the same number of forward passes as batches of the
largest size, their sizes differing by at most one window or slice). A backend with
``fixed_batch = True`` (OpenVINO, which compiles one model per input shape) gets every batch filled to
the same size (the last window or slice repeated, its output dropped), so a case compiles one shape.
Progress is reported per window (or slice batch) and the cancel token is checked before every forward
pass and after every window reported, so a cancel stops the work within one batch and no progress is
reported after it.
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
#: Most sliding windows per forward pass (fewer when memory is short, :mod:`.inference`).
WINDOW_BATCH = 4


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


def batch_size(n: int, most: int) -> int:
    """The size of balanced batches of ``n`` units, at most ``most`` each: as many batches as
    ``ceil(n / most)``, the last one smaller by less than their count."""
    most = max(1, min(int(most), n))
    return math.ceil(n / math.ceil(n / most))


def _filled_batch(batch: torch.Tensor, size: int, run: Runner) -> torch.Tensor:
    """``batch`` with its last item repeated up to ``size`` for a backend that wants one batch size."""
    short = size - batch.shape[0]
    if short <= 0 or not getattr(run.backend, "fixed_batch", False):
        return batch
    return torch.cat([batch, batch[-1:].expand((short,) + tuple(batch.shape[1:]))])


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
        #: Most windows per forward pass of :func:`pass_3d`.
        self.batch = WINDOW_BATCH

    def step(self, message: str) -> None:
        """Report one more unit done; a cancel set meanwhile stops here."""
        self.done += 1
        report(self.on_progress, self.done, self.total, message)
        check(self.cancel)

    def forward(self, x: torch.Tensor, units: int = 1) -> torch.Tensor:
        """One pass of ``x`` (CPU float32) through the network; float32 CPU logits. ``units``: the
        windows it counts for (:attr:`units`, the forward passes reported as ``info["windows"]``)."""
        check(self.cancel)
        out = self.backend(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise InferenceError(f"network returned {type(out).__name__}, not a tensor")
        if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:]:
            raise InferenceError(f"network mapped input {tuple(x.shape)} to {tuple(out.shape)}; "
                                 "it must keep the batch and spatial sizes")
        self.units += units
        return out.to("cpu").to(torch.float32, memory_format=torch.contiguous_format)  # one copy, not two


def pass_3d(run: Runner, x: np.ndarray, window: tuple[int, ...], overlap: float, tag: str) -> np.ndarray:
    """Logits ``(K, *shape)`` of one 3D pass, whole-volume or Gaussian-blended windows, up to
    ``run.batch`` windows per forward pass."""
    shape = x.shape[1:]
    slices = plan_windows(shape, window, overlap)
    xt = torch.from_numpy(x)
    if len(slices) == 1:
        out = run.forward(xt[None])[0]
        run.step(f"{tag}whole volume")
        return out.numpy()
    with torch.inference_mode():  # the outputs are inference tensors: blend them in place
        return _blend(run, xt, slices, _gaussian(window), tag)


def _blend(run: Runner, xt: torch.Tensor, slices: list[tuple[slice, ...]], imp: torch.Tensor, tag: str
           ) -> np.ndarray:
    """The windows ``slices`` of ``xt`` run in batches, weighted by ``imp`` and blended in place."""
    shape = tuple(xt.shape[1:])
    acc: torch.Tensor | None = None
    weight = torch.zeros(shape, dtype=torch.float32)
    size = batch_size(len(slices), run.batch)
    for start in range(0, len(slices), size):
        group = slices[start:start + size]
        batch = torch.stack([xt[(slice(None),) + sl] for sl in group])  # one copy, contiguous
        out = run.forward(_filled_batch(batch, size, run), units=len(group))
        del batch
        if acc is None:
            acc = torch.zeros((out.shape[1],) + shape, dtype=torch.float32)
        for j, sl in enumerate(group):
            acc[(slice(None),) + sl] += out[j].mul_(imp)  # in place: no temporary per window
            weight[sl] += imp
            run.step(f"{tag}window {start + j + 1}/{len(slices)}")
        del out
    assert acc is not None
    return acc.div_(weight).numpy()


def pass_2d(run: Runner, x: np.ndarray, axis: int, tag: str) -> np.ndarray:
    """Logits ``(K, *shape)`` of slice-wise prediction along model axis ``axis``, in balanced batches of
    at most :data:`SLICE_BATCH` slices."""
    moved = np.moveaxis(x, axis + 1, 0)  # (n, C, h, w)
    n = moved.shape[0]
    size = batch_size(n, SLICE_BATCH)
    logits: np.ndarray | None = None
    for start in range(0, n, size):
        stop = min(start + size, n)
        batch = torch.from_numpy(np.ascontiguousarray(moved[start:stop]))
        out = run.forward(_filled_batch(batch, size, run))[: stop - start].numpy()
        if logits is None:
            logits = np.empty((n,) + out.shape[1:], np.float32)  # (n, K, h, w), filled batch by batch
        logits[start:stop] = out
        run.step(f"{tag}slices {start + 1}-{stop}/{n}")
    assert logits is not None
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


__all__ = ["DEFAULT_OVERLAP", "SLICE_BATCH", "WINDOW_BATCH", "Runner", "activate", "batch_size", "pass_2d", "pass_3d",
           "pass_volume", "plan_windows", "round_up"]
