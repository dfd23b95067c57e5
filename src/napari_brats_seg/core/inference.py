"""Whole-case prediction: :func:`predict` turns a :class:`~.case.Case` and a model into labels.

Pipeline (every step follows the model's :class:`~.models.spec.ModelSpec`)
--------------------------------------------------------------------------
1. The registry's ``check_compatible`` plus the output checks decoding needs: a model that does
   not fit raises :class:`~.errors.ModelError` before any compute.
2. Channels by modality name (``case.stack(spec.channels)``), brain mask (any channel non-zero),
   ``preprocess.normalize(images, spec.normalization, mask)``.
3. Crop to the brain's bounding box plus :data:`BRAIN_MARGIN` voxels (restored afterwards: outside
   the box is background), reorder to the model's voxel order (``to_model_axes``), pad (centred,
   as MONAI and nnU-Net do) to ``spec.divisible_by`` with each channel's normalised background value.
4. Run the network, in one of three modes, all with an exact progress total computed up front and
   the cancel token checked before every unit (so a cancel stops the work within one unit):

   - ``predict_volume``: the network tiles itself (DeepMedic); it reports progress and checks the
     token between its tiles.
   - ``dims == 3``: the whole (cropped) volume in one pass when ``spec.patch_size`` is None or the
     crop fits in it; otherwise windows of ``patch_size`` on an even grid with ``overlap``,
     blended with MONAI's Gaussian importance map (``sigma_scale`` 0.125, as MONAI's
     ``sliding_window_inference(mode="gaussian")`` and nnU-Net).
   - ``dims == 2``: axial slices in batches of :data:`SLICE_BATCH`.

5. Test-time augmentation (``tta=True``): every combination of flips of the spatial axes (8 in 3D,
   4 in-plane for 2D models), each prediction flipped back; probabilities are averaged. The
   **uncertainty** map is, per voxel, the largest over WT, TC and ET of the standard deviation of
   that region's probability across the flips (0 = all flips agree; at most 0.5).
6. Decoding (:mod:`.postprocess`): argmax of the softmax for ``labels`` models (channels of class -1
   never chosen), sigmoid > 0.5 merged with the region hierarchy for ``regions`` models; then the
   optional clean-ups. Everything is mapped back to the case's internal ``(z, y, x)`` grid.

Device and precision come from :mod:`.device`. On a GPU that runs out of memory the windows are
halved (down to :data:`MIN_WINDOW`), then the work moves to the CPU; both are recorded in
``info["fallbacks"]`` and warned about. Errors raised by the network become
:class:`~.errors.InferenceError` with the original message.
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import preprocess as pp
from .case import Case, canonical_modality
from .device import Precision, choose_precision, empty_cache, is_out_of_memory, resolve_device, run_context
from .errors import BratsSegError, InferenceError, ModelError
from .memory import keep_freed_memory
from .models.spec import LoadedModel, ModelSpec
from .postprocess import check_options, clean_labels, labels_from_softmax, merge_regions, region_probabilities
from .progress import CancelToken, ProgressCallback, check, report

#: Voxels kept around the brain's bounding box.
BRAIN_MARGIN = 4
#: Axial slices per forward pass of 2D models.
SLICE_BATCH = 8
#: Smallest window edge the out-of-memory fallback shrinks to.
MIN_WINDOW = 32
#: Default fraction of a window that overlaps its neighbour.
DEFAULT_OVERLAP = 0.5


@dataclass
class Segmentation:
    """The result of :func:`predict`.

    Attributes
    ----------
    labels
        Internal classes (0 bg, 1 NCR, 2 ED, 3 ET), uint8, ``(z, y, x)`` of the case.
    probabilities
        Region (``WT``, ``TC``, ``ET``) -> float32 probability ``(z, y, x)``, or None.
    uncertainty
        float32 ``(z, y, x)`` disagreement across TTA flips (see the module docstring), or None.
    info
        ``model``, ``family``, ``source``, ``device``, ``dtype``, ``seconds``, ``windows`` (forward
        passes run), ``mode``, ``tta`` (passes averaged), ``window``, ``crop`` (the brain box, internal
        axes), ``fallbacks`` (out-of-memory retries) and ``warnings`` (from ``check_compatible``).
    """

    labels: np.ndarray
    probabilities: dict[str, np.ndarray] | None = None
    uncertainty: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


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


def _round_up(n: int, k: int) -> int:
    return int(math.ceil(n / k) * k)


def _check_model(spec: ModelSpec, case: Case) -> list[str]:
    """The registry's compatibility check plus what decoding needs; returns the warnings."""
    from .models.registry import check_compatible

    warn = list(check_compatible(spec, case) or [])
    try:
        names = [canonical_modality(m) for m in spec.channels]
    except KeyError as exc:
        raise ModelError(f"model {spec.name}: {exc.args[0]}") from None
    missing = [m for m in names if m not in case.images]
    if missing:
        raise ModelError(f"model {spec.name} needs {', '.join(missing)}, which case {case.case_id} lacks")
    if spec.output not in ("labels", "regions"):
        raise ModelError(f"model {spec.name}: unknown output kind {spec.output!r}")
    if spec.output == "regions" and set(spec.regions) != {"WT", "TC", "ET"}:
        raise ModelError(f"model {spec.name}: region outputs must be WT, TC and ET, got {spec.regions}")
    if spec.dims not in (2, 3):
        raise ModelError(f"model {spec.name}: dims must be 2 or 3, got {spec.dims}")
    return warn


class _Runner:
    """Runs forward passes with progress, cancellation, precision and error wrapping."""

    def __init__(self, network: Any, device: torch.device, precision: Precision,
                 on_progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        self.network, self.device, self.precision = network, device, precision
        self.on_progress, self.cancel = on_progress, cancel
        self.done, self.total, self.units = 0, 0, 0

    def step(self, message: str) -> None:
        self.done += 1
        report(self.on_progress, self.done, self.total, message)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One pass of ``x`` (CPU float32) through the network; float32 CPU logits."""
        check(self.cancel)
        xd = x.to(self.device)
        if self.precision.channels_last and xd.ndim == 5:
            xd = xd.contiguous(memory_format=torch.channels_last_3d)
        with run_context(self.device, self.precision):
            out = self.network(xd)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise InferenceError(f"network returned {type(out).__name__}, not a tensor")
        if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:]:
            raise InferenceError(f"network mapped input {tuple(x.shape)} to {tuple(out.shape)}; "
                                 "it must keep the batch and spatial sizes")
        self.units += 1
        return out.to("cpu").to(torch.float32, memory_format=torch.contiguous_format)  # one copy, not two


def _pass_3d(run: _Runner, x: np.ndarray, window: tuple[int, ...], overlap: float, tag: str) -> np.ndarray:
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


def _pass_2d(run: _Runner, x: np.ndarray, axis: int, tag: str) -> np.ndarray:
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


def _pass_volume(run: _Runner, x: np.ndarray, member: int, members: int, tag: str,
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


def _activate(logits: np.ndarray, output: str) -> np.ndarray:
    t = torch.from_numpy(logits)
    return (torch.softmax(t, dim=0) if output == "labels" else torch.sigmoid(t)).numpy()


def _flip_sets(dims: int, slice_axis: int, self_tiling: bool) -> list[tuple[int, ...]]:
    axes = [0, 1, 2] if dims == 3 or self_tiling else [a for a in (0, 1, 2) if a != slice_axis]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def _slice_axis(orientation: str) -> int:
    return next(i for i, c in enumerate(orientation.upper()) if c in "SI")


def _placement(net: Any, origin: tuple[int, ...], image_shape: tuple[int, ...], size: tuple[int, ...],
               flip: tuple[int, ...]) -> dict[str, tuple[int, ...]] | None:
    """``origin``/``image_shape`` keywords for a ``predict_volume`` that takes them (flips mirrored)."""
    try:
        params = inspect.signature(net.predict_volume).parameters
    except (TypeError, ValueError):
        return None
    if "origin" not in params or "image_shape" not in params:
        return None
    o = tuple(image_shape[a] - origin[a] - size[a] if a in flip else origin[a] for a in range(3))
    return {"origin": o, "image_shape": tuple(image_shape)}


def _run_members(run: _Runner, x: np.ndarray, spec: ModelSpec, flips: list[tuple[int, ...]],
                 window: tuple[int, ...], overlap: float, want_regions: bool, keep_hierarchy: bool,
                 origin: tuple[int, ...] = (0, 0, 0), image_shape: tuple[int, ...] | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean probabilities over the flips, plus the sum and sum of squares of region probabilities."""
    self_tiling = hasattr(run.network, "predict_volume")
    shape = x.shape[1:]
    if self_tiling:
        per_pass = 1
    elif spec.dims == 3:
        per_pass = len(plan_windows(shape, window, overlap))
    else:
        per_pass = math.ceil(shape[_slice_axis(spec.orientation)] / SLICE_BATCH)
    run.total, run.done = per_pass * len(flips), 0
    if not self_tiling:  # a self-tiling network announces its own total with its first report
        report(run.on_progress, 0, run.total, "starting")
    mean: np.ndarray | None = None
    s1 = s2 = None
    names = spec.classes if spec.output == "labels" else spec.regions
    for m, flip in enumerate(flips):
        tag = f"flip {m + 1}/{len(flips)}: " if len(flips) > 1 else ""
        xf = np.ascontiguousarray(np.flip(x, axis=tuple(a + 1 for a in flip))) if flip else x
        if self_tiling:
            place = _placement(run.network, origin, image_shape or shape, shape, flip)
            logits = _pass_volume(run, xf, m, len(flips), tag, place)
        elif spec.dims == 3:
            logits = _pass_3d(run, xf, window, overlap, tag)
        else:
            logits = _pass_2d(run, xf, _slice_axis(spec.orientation), tag)
        expected = len(names)
        if logits.shape[0] != expected:
            raise InferenceError(f"model {spec.name} produced {logits.shape[0]} channels; its spec names {expected}")
        prob = _activate(logits, spec.output)
        if flip:
            prob = np.ascontiguousarray(np.flip(prob, axis=tuple(a + 1 for a in flip)))
        mean = prob if mean is None else mean + prob
        if want_regions and len(flips) > 1:
            reg = np.stack(list(region_probabilities(prob, spec.output, names, keep_hierarchy).values()))
            s1 = reg if s1 is None else s1 + reg
            s2 = reg ** 2 if s2 is None else s2 + reg ** 2
    assert mean is not None
    return (mean if len(flips) == 1 else mean / len(flips)), s1, s2


def _shrink(window: tuple[int, ...], k: int) -> tuple[int, ...] | None:
    new = tuple(max(_round_up(max(w // 2, 1), k), _round_up(MIN_WINDOW, k)) if w > MIN_WINDOW else w
                for w in window)
    return new if new != window else None


def predict(case: Case, model: LoadedModel, *, device: str | torch.device = "auto", tta: bool = False,
            probabilities: bool = False, postprocess: Mapping[str, Any] | None = None,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
            precision: str = "auto", overlap: float = DEFAULT_OVERLAP, crop: bool | None = None) -> Segmentation:
    """Segment ``case`` with ``model`` (see the module docstring for every step).

    A model trained at another voxel spacing (``spec.spacing`` differing by more than 25 % on an
    axis, e.g. the shipped 2 mm models on 1 mm BraTS data) runs on the case resampled to its spacing;
    its region probabilities are brought back to the case's grid before labels, post-processing,
    probabilities and uncertainty are made (:mod:`.resample`), and ``info["resampled"]`` says so.

    Parameters
    ----------
    case
        The case; its images are not modified.
    model
        The network and its spec.
    device
        ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    tta
        Average over flips; also gives the uncertainty map.
    probabilities
        Return per-region probability maps.
    postprocess
        ``{"et_min_voxels": int, "min_component_voxels": int, "keep_hierarchy": bool}``.
    on_progress
        ``on_progress(done, total, message)``, ``total`` known at the first call.
    cancel
        Checked before every window, slice batch or tile.
    precision
        ``"auto"``, ``"fp32"`` or ``"bf16"`` (see :func:`.device.choose_precision`).
    overlap
        Overlap of sliding windows.
    crop
        Crop to the brain's bounding box; ``None`` (default): as the model's ``spec.crop`` says (yes,
        except for MONAI bundles). Without it the whole volume is seen, as MONAI's bundle pipeline sees
        it: networks with global normalisation layers (GroupNorm, InstanceNorm) then see the same
        statistics as such a pipeline, at about twice the cost.

    Raises
    ------
    ModelError
        The model does not fit the case.
    InferenceError
        The network failed (message included), or ran out of memory on every fallback.
    Cancelled
        ``cancel`` was set.
    """
    from .resample import internal_spacing, needs_resampling, predict_resampled

    kwargs = {"device": device, "tta": tta, "probabilities": probabilities, "postprocess": postprocess,
                  "on_progress": on_progress, "cancel": cancel, "precision": precision, "overlap": overlap, "crop": crop}
    target = internal_spacing(model.spec.spacing, model.spec.orientation)
    if len(model.spec.spacing) == 3 and needs_resampling(case.spacing, target):
        return predict_resampled(case, model, target, _predict_native, **kwargs)
    return _predict_native(case, model, **kwargs)


def _predict_native(case: Case, model: LoadedModel, *, device: str | torch.device = "auto", tta: bool = False,
                    probabilities: bool = False, postprocess: Mapping[str, Any] | None = None,
                    on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                    precision: str = "auto", overlap: float = DEFAULT_OVERLAP, crop: bool | None = None) -> Segmentation:
    """:func:`predict` on the case's own grid (the model's spacing is taken to match it)."""
    t0 = time.perf_counter()
    keep_freed_memory()
    spec = model.spec
    if crop is None:
        crop = spec.crop
    opts = check_options(postprocess)
    warn = _check_model(spec, case)
    dev = resolve_device(device)
    net = model.network
    check(cancel)

    images = case.stack(spec.channels)
    mask = pp.brain_mask(images)
    try:
        normed = pp.normalize(images, spec.normalization, mask)
    except ValueError as exc:
        raise ModelError(f"model {spec.name}: {exc}") from None
    outside = ~mask
    bg = [float(c[outside][0]) if outside.any() else 0.0 for c in normed]
    box = pp.bounding_box(mask, BRAIN_MARGIN) if crop else tuple(slice(0, n) for n in mask.shape)
    x = pp.to_model_axes(pp.crop(normed, box), spec.orientation)
    # Free the whole-case copies before the network runs: its feature maps then reuse their pages
    # (core.memory), which spares page faults on the first case of a process.
    del images, normed, outside
    crop_shape = x.shape[1:]
    k = max(int(spec.divisible_by or 1), 1)
    self_tiling = hasattr(net, "predict_volume")
    pad_axes = [True, True, True]
    if spec.dims == 2 and not self_tiling:
        pad_axes[_slice_axis(spec.orientation)] = False
    target = [(_round_up(s, k) if p else s) for s, p in zip(crop_shape, pad_axes)]
    whole = (spec.patch_size is None or spec.dims == 2 or self_tiling
             or all(t <= int(w) for t, w in zip(target, spec.patch_size)))
    if not whole:
        target = [max(t, int(w)) for t, w in zip(target, spec.patch_size)]  # type: ignore[arg-type]
    # centred padding, as MONAI's sliding_window_inference and nnU-Net pad
    inner = tuple(slice((t - s) // 2, (t - s) // 2 + s) for s, t in zip(crop_shape, target))
    if list(crop_shape) != target:
        padded = np.empty((x.shape[0],) + tuple(target), np.float32)
        for c in range(x.shape[0]):
            padded[c].fill(bg[c])
        padded[(slice(None),) + inner] = x
        x = padded
    # where the padded input lies in the whole image, in model axes (for self-tiling networks)
    placed = np.zeros(case.shape, np.uint8)
    placed[box] = 1
    placed_m = pp.to_model_axes(placed, spec.orientation)
    image_shape = tuple(int(n) for n in placed_m.shape)
    origin = tuple(int(np.flatnonzero(placed_m.any(axis=tuple(b for b in range(3) if b != a)))[0]) - sl.start
                   for a, sl in enumerate(inner))
    window = tuple(target) if whole else tuple(int(w) for w in spec.patch_size)  # type: ignore[union-attr]
    flips = _flip_sets(spec.dims, _slice_axis(spec.orientation), self_tiling) if tta else [()]

    fallbacks: list[str] = []
    first_param = next(iter(net.parameters()), None) if hasattr(net, "parameters") else None
    home = first_param.device if first_param is not None else torch.device("cpu")
    prec = choose_precision(dev, spec.family, spec.dims, precision)
    if self_tiling:
        prec = Precision(prec.dtype, channels_last=False)
    want_regions = probabilities or tta
    try:
        while True:
            try:
                net.to(dev)
                if prec.channels_last:
                    net.to(memory_format=torch.channels_last_3d)
                run = _Runner(net, dev, prec, on_progress, cancel)
                mean, s1, s2 = _run_members(run, x, spec, flips, window, overlap, want_regions,
                                            opts["keep_hierarchy"], origin, image_shape)
                break
            except BratsSegError:
                raise
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise InferenceError(f"model {spec.name} failed on case {case.case_id}: "
                                         f"{type(exc).__name__}: {exc}") from exc
                empty_cache(dev)
                smaller = None if self_tiling or spec.dims == 2 else _shrink(window, k)
                if smaller is not None:
                    msg = f"out of memory on {dev} with window {window}; retrying with {smaller}"
                    window = smaller
                elif dev.type != "cpu":
                    msg = f"out of memory on {dev}; retrying on the CPU"
                    dev = torch.device("cpu")
                    prec = choose_precision(dev, spec.family, spec.dims, precision)
                    window = tuple(target) if whole else tuple(int(w) for w in spec.patch_size)  # type: ignore
                else:
                    raise InferenceError(f"out of memory segmenting {case.case_id} on the CPU "
                                         f"even with window {window}: {exc}") from exc
                fallbacks.append(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
    finally:
        if prec.channels_last:
            net.to(memory_format=torch.contiguous_format)
        net.to(home)

    check(cancel)
    unpad = (slice(None),) + inner
    names = spec.classes if spec.output == "labels" else spec.regions
    mean = pp.from_model_axes(mean[unpad], spec.orientation)
    if spec.output == "labels":
        lab_crop = labels_from_softmax(mean, names)
    else:
        lab_crop = merge_regions({r: mean[i] > 0.5 for i, r in enumerate(names)}, opts["keep_hierarchy"])
    labels = clean_labels(pp.uncrop(lab_crop, box, case.shape, 0), opts)
    probs = None
    if probabilities:
        reg = region_probabilities(mean, spec.output, names, opts["keep_hierarchy"])
        probs = {r: pp.uncrop(p.astype(np.float32), box, case.shape, 0.0) for r, p in reg.items()}
    unc = None
    if tta and s1 is not None and s2 is not None:
        n = len(flips)
        var = np.clip(s2 / n - (s1 / n) ** 2, 0, None)
        std = np.sqrt(var).max(axis=0).astype(np.float32)
        unc = pp.uncrop(pp.from_model_axes(std[tuple(unpad[1:])], spec.orientation), box, case.shape, 0.0)
    mode = ("predict_volume" if self_tiling else "slices" if spec.dims == 2
            else "whole volume" if len(plan_windows(x.shape[1:], window, overlap)) == 1 else "sliding window")
    info = {
        "model": spec.name, "family": spec.family, "source": model.source, "device": str(dev),
        "dtype": prec.label, "seconds": round(time.perf_counter() - t0, 3), "windows": run.units,
        "mode": mode, "tta": len(flips), "window": list(window),
        "crop": [[s.start, s.stop] for s in box], "fallbacks": fallbacks, "warnings": warn,
    }
    return Segmentation(labels=labels, probabilities=probs, uncertainty=unc, info=info)


__all__ = ["Segmentation", "predict", "plan_windows", "BRAIN_MARGIN", "SLICE_BATCH"]
