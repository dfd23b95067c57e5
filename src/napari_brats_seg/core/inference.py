"""Whole-case prediction: :func:`predict` turns a :class:`~.case.Case` and a model into labels.

Pipeline (every step follows the model's :class:`~.models.spec.ModelSpec`)
--------------------------------------------------------------------------
1. :meth:`~.models.spec.ModelSpec.check_case`: a model that does not fit raises
   :class:`~.errors.ModelError` before any compute.
2. :func:`~.placement.prepare`: channels by modality name, resampling to the model's spacing when it
   differs, brain mask, normalisation, crop to the brain's box plus
   :data:`~.placement.BRAIN_MARGIN`, the model's voxel order, centred padding; it returns the
   network's input and the :class:`~.placement.Placement` that records each of those steps.
3. :func:`run_network` runs the network, in one of three modes, all with an exact progress total
   computed up front and the cancel token checked before every unit (so a cancel stops the work
   within one unit):

   - ``predict_volume``: the network tiles itself (DeepMedic); it reports progress and checks the
     token between its tiles, and learns where its input lies in the whole image
     (:meth:`~.placement.Placement.origin`).
   - ``dims == 3``: the whole (cropped) volume in one pass when ``spec.patch_size`` is None or the
     crop fits in it; otherwise windows of ``patch_size`` on an even grid with ``overlap``,
     blended with MONAI's Gaussian importance map (``sigma_scale`` 0.125, as MONAI's
     ``sliding_window_inference(mode="gaussian")`` and nnU-Net), up to :data:`~.passes.WINDOW_BATCH`
     windows per forward pass (fewer when memory is short: :func:`~.window_plan.window_batch`; one
     after an out-of-memory error, before the windows shrink).
   - ``dims == 2``: axial slices in balanced batches of at most :data:`SLICE_BATCH`.

   Test-time augmentation (``tta=True``): every combination of flips of the spatial axes (8 in 3D,
   4 in-plane for 2D models), each prediction flipped back; probabilities are averaged. The
   **uncertainty** map is, per voxel, the largest over WT, TC and ET of the standard deviation of
   that region's probability across the flips (0 = all flips agree; at most 0.5).
4. :meth:`~.placement.Placement.restore` brings the probabilities back to the case's ``(z, y, x)``
   grid, and they are decoded once there (:func:`decode`, :mod:`.postprocess`): argmax of the
   softmax for ``labels`` models (channels of class -1 never chosen), region probabilities > 0.5
   merged with the region hierarchy for ``regions`` models; then the optional clean-ups. When every
   step of the placement is exact (no resampling) the labels are decoded on the network's grid and
   restored, which gives the same labels with less memory.

Device and precision come from :mod:`.device`. On a GPU that runs out of memory the windows are
halved (down to :data:`~.window_plan.MIN_WINDOW`), then the work moves to the CPU; both are recorded
in ``info["fallbacks"]`` and warned about. Errors raised by the network become
:class:`~.errors.InferenceError` with the original message.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .case import Case
from .device import Precision, choose_precision, empty_cache, is_out_of_memory, resolve_device
from .errors import BratsSegError, InferenceError
from .memory import keep_freed_memory
from .models.spec import LoadedModel, ModelSpec
from .passes import (
    DEFAULT_OVERLAP,
    SLICE_BATCH,
    WINDOW_BATCH,
    Runner,
    activate,
    pass_2d,
    pass_3d,
    pass_volume,
    plan_windows,
)
from .placement import BRAIN_MARGIN, Placement, Resample, prepare, slice_axis
from .postprocess import (
    clean_labels,
    labels_from_softmax,
    merge_options,
    merge_regions,
    region_probabilities,
    summary,
)
from .progress import CancelToken, ProgressCallback, check, report
from .window_plan import fit_memory, shrink, whole_or_patch, window_batch

log = logging.getLogger(__name__)


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
        ``model``, ``family``, ``source``, ``device``, ``dtype``, ``seconds``, ``windows`` (windows
        run, or slice batches), ``mode``, ``tta`` (passes averaged), ``window``, ``crop`` (the brain box, internal
        axes), ``fallbacks`` (out-of-memory retries), ``warnings`` (from ``spec.check_case``) and
        ``runtime`` (what ran the network, its version and precision), ``postprocess`` (the clean-ups
        applied, :func:`.postprocess.summary`).
    """

    labels: np.ndarray
    probabilities: dict[str, np.ndarray] | None = None
    uncertainty: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _flip_sets(dims: int, axis: int, self_tiling: bool) -> list[tuple[int, ...]]:
    """Every combination of flipped axes (a 2D model's slice axis ``axis`` is never flipped)."""
    axes = [0, 1, 2] if dims == 3 or self_tiling else [a for a in (0, 1, 2) if a != axis]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def _tile_place(net: Any, origin: tuple[int, ...], image_shape: tuple[int, ...], size: tuple[int, ...],
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


def _one_pass(run: Runner, x: np.ndarray, spec: ModelSpec, flip: tuple[int, ...], member: int, members: int,
              window: tuple[int, ...], overlap: float, origin: tuple[int, ...], image_shape: tuple[int, ...]
              ) -> np.ndarray:
    """Probabilities ``(K, *shape)`` of one TTA member: ``x`` flipped on ``flip``, run, flipped back."""
    tag = f"flip {member + 1}/{members}: " if members > 1 else ""
    axes = tuple(a + 1 for a in flip)
    xf = np.ascontiguousarray(np.flip(x, axis=axes)) if flip else x
    if spec.self_tiling:
        place = _tile_place(run.network, origin, image_shape, tuple(x.shape[1:]), flip)
        logits = pass_volume(run, xf, member, members, tag, place)
    elif spec.dims == 3:
        logits = pass_3d(run, xf, window, overlap, tag)
    else:
        logits = pass_2d(run, xf, slice_axis(spec.orientation), tag)
    expected = len(spec.classes if spec.output == "labels" else spec.regions)
    if logits.shape[0] != expected:
        raise InferenceError(f"model {spec.name} produced {logits.shape[0]} channels; its spec names {expected}")
    prob = activate(logits, spec.output)
    return np.ascontiguousarray(np.flip(prob, axis=axes)) if flip else prob


def _units_per_pass(run: Runner, shape: Sequence[int], spec: ModelSpec, window: tuple[int, ...],
                    overlap: float) -> int:
    if spec.self_tiling:
        return 1
    if spec.dims == 3:
        return len(plan_windows(shape, window, overlap))
    return math.ceil(shape[slice_axis(spec.orientation)] / SLICE_BATCH)


def _run_members(run: Runner, x: np.ndarray, spec: ModelSpec, flips: list[tuple[int, ...]],
                 window: tuple[int, ...], overlap: float, want_regions: bool, keep_hierarchy: bool,
                 origin: tuple[int, ...], image_shape: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean probabilities over the flips, plus the sum and sum of squares of region probabilities."""
    run.total, run.done = _units_per_pass(run, x.shape[1:], spec, window, overlap) * len(flips), 0
    if not spec.self_tiling:  # a self-tiling network announces its own total
        report(run.on_progress, 0, run.total, "starting")
    mean: np.ndarray | None = None
    s1 = s2 = None
    names = spec.classes if spec.output == "labels" else spec.regions
    for m, flip in enumerate(flips):
        prob = _one_pass(run, x, spec, flip, m, len(flips), window, overlap, origin, image_shape)
        mean = prob if mean is None else mean + prob
        if want_regions and len(flips) > 1:
            reg = np.stack(list(region_probabilities(prob, spec.output, names, keep_hierarchy).values()))
            s1 = reg if s1 is None else s1 + reg
            s2 = reg ** 2 if s2 is None else s2 + reg ** 2
    assert mean is not None
    return (mean if len(flips) == 1 else mean / len(flips)), s1, s2


@dataclass
class NetworkOutput:
    """What :func:`run_network` returns.

    Attributes
    ----------
    mean
        Probabilities ``(K, *input shape)`` (softmax or sigmoid), averaged over the TTA flips.
    s1, s2
        Sum and sum of squares over the flips of the region probabilities ``(3, ...)`` (TTA only).
    flips
        TTA members run; ``window``, ``device``, ``precision``, ``units`` (windows or slice
        batches run), ``mode`` and ``fallbacks`` (out-of-memory retries) describe the run; ``runtime``
        names the runtime that ran it, its version and precision (e.g. ``"openvino 2026.4.1 fp32"``).
    """

    mean: np.ndarray
    s1: np.ndarray | None
    s2: np.ndarray | None
    flips: int
    window: tuple[int, ...]
    device: torch.device
    precision: Precision
    units: int
    mode: str
    fallbacks: list[str] = field(default_factory=list)
    runtime: str = "torch"


@contextmanager
def _on_device(net: Any, dev: torch.device, prec: Precision) -> Iterator[None]:
    """``net`` on ``dev`` (channels-last when ``prec`` asks) for the block, back home afterwards."""
    first_param = next(iter(net.parameters()), None) if isinstance(net, torch.nn.Module) else None
    home = first_param.device if first_param is not None else torch.device("cpu")
    try:
        net.to(dev)
        if prec.channels_last:
            net.to(memory_format=torch.channels_last_3d)
        yield
    finally:
        if prec.channels_last:
            net.to(memory_format=torch.contiguous_format)
        net.to(home)


def _backend(runtime: str, network: Any, spec: ModelSpec, device: torch.device, prec: Precision, precision: str,
             weights_id: str | None, shape: tuple[int, ...]) -> tuple[Any, Precision]:
    """The :mod:`.runtimes` backend of the run and the precision it runs in: torch's ``prec``; fp32 for the
    exported runtimes (what was measured to agree with torch fp32), OpenVINO's bf16 only when
    ``precision="bf16"`` is asked for."""
    from .runtimes import choose, select

    name = choose(runtime, spec, device)
    if name == "torch":
        return None, prec
    runtime_prec = Precision("bf16" if name == "openvino" and precision == "bf16" else "fp32")
    try:
        backend = select(name, spec, network, device=device, precision=runtime_prec, weights_id=weights_id,
                         shape=shape)
    except InferenceError as exc:
        if str(runtime).lower() != "auto":
            raise
        log.warning("runtime %s could not run %s (%s); running it on torch", name, spec.name, exc)
        return None, prec
    return backend, runtime_prec


def _export_shape(spec: ModelSpec, window: tuple[int, ...]) -> tuple[int, ...]:
    """The spatial shape of one forward pass (a 2D model's slices drop the slice axis)."""
    if spec.dims == 3:
        return window
    axis = slice_axis(spec.orientation)
    return tuple(s for i, s in enumerate(window) if i != axis)


def run_network(network: Any, spec: ModelSpec, x: np.ndarray, placement: Placement, *,
                device: torch.device, precision: str = "auto", tta: bool = False,
                overlap: float = DEFAULT_OVERLAP, want_regions: bool = False, keep_hierarchy: bool = True,
                on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                what: str = "the case", runtime: str = "auto", weights_id: str | None = None) -> NetworkOutput:
    """Run ``network`` on a prepared input ``x`` (``(C, ...)`` on ``placement``'s grid).

    Windows, TTA, device, precision, progress and cancellation as the module docstring says; on
    out of memory the windows shrink, then the work moves to the CPU. ``runtime`` (``"auto"``,
    ``"torch"``, ``"onnxruntime"``, ``"openvino"``) chooses what runs the passes
    (:func:`.runtimes.select`; ``weights_id`` keys its export cache).

    Raises
    ------
    InferenceError
        The network failed, or ran out of memory on every fallback (``what`` names the case); a
        runtime asked for is not installed (:class:`.runtimes.RuntimeNotInstalled`).
    """
    self_tiling = spec.self_tiling
    first_window = window = whole_or_patch(x.shape[1:], spec, self_tiling)
    flips = _flip_sets(spec.dims, slice_axis(spec.orientation), self_tiling) if tta else [()]
    origin, image_shape = placement.origin()
    prec = choose_precision(device, spec.family, spec.dims, precision)
    if self_tiling:
        prec = Precision(prec.dtype, channels_last=False)
    fallbacks: list[str] = []
    window, sized = fit_memory(window, spec, device, prec)
    if sized:
        fallbacks.append(sized)
        log.info(sized)
    backend, run, batch = None, None, None
    own = _own_runtime(network, runtime, device, prec) if self_tiling else None
    while True:
        try:
            backend, prec = _backend("torch" if own else runtime, network, spec, device, prec, precision,
                                     weights_id, _export_shape(spec, window))
            with _on_device(network, device, prec):
                run = Runner(network, device, prec, on_progress, cancel, backend)
                run.batch = batch if batch is not None else window_batch(window, spec, device, prec, WINDOW_BATCH)
                mean, s1, s2 = _run_members(run, x, spec, flips, window, overlap, want_regions, keep_hierarchy,
                                            origin, image_shape)
            break
        except BratsSegError:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise InferenceError(f"model {spec.name} failed on {what}: {type(exc).__name__}: {exc}") from exc
            empty_cache(device)
            smaller = None if self_tiling or spec.dims == 2 else shrink(window, max(int(spec.divisible_by or 1), 1))
            if run is not None and run.batch > 1 and len(plan_windows(x.shape[1:], window, overlap)) > 1:
                msg = f"out of memory on {device} with {run.batch} windows per pass; retrying with one"
                batch = 1
            elif smaller is not None:
                msg = f"out of memory on {device} with window {window}; retrying with {smaller}"
                window = smaller
            elif device.type != "cpu":
                msg = f"out of memory on {device}; retrying on the CPU"
                device, window = torch.device("cpu"), first_window
                prec = choose_precision(device, spec.family, spec.dims, precision)
            else:
                raise InferenceError(f"out of memory segmenting {what} on the CPU "
                                     f"even with window {window}: {exc}") from exc
            fallbacks.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    mode = ("predict_volume" if self_tiling else "slices" if spec.dims == 2
            else "whole volume" if len(plan_windows(x.shape[1:], window, overlap)) == 1 else "sliding window")
    assert run is not None
    return NetworkOutput(mean, s1, s2, len(flips), window, device, prec, run.units, mode, fallbacks,
                         own or run.backend.label)


def _own_runtime(network: Any, runtime: str, device: torch.device, prec: Precision) -> str | None:
    """For a self-tiling network that picks its runtime itself (``use_runtime``, DeepMedic), what runs it."""
    use = getattr(network, "use_runtime", None)
    return str(use(runtime, device, prec.dtype)) if callable(use) else None


def background_fill(spec: ModelSpec) -> list[float]:
    """Per output channel, the probability of a voxel outside the crop: the first background class
    channel certain for ``labels`` models, every region 0 for ``regions`` models."""
    if spec.output == "regions":
        return [0.0] * len(spec.regions)
    bg = next((i for i, c in enumerate(spec.classes) if c == 0), None)
    return [1.0 if i == bg else 0.0 for i in range(len(spec.classes))]


def decode(prob: np.ndarray, spec: ModelSpec, keep_hierarchy: bool = True) -> np.ndarray:
    """Internal labels from probabilities: argmax of the classes (``labels`` models) or the WT, TC, ET
    region probabilities ``(3, ...)`` above 0.5 merged (``regions`` models; see :func:`region_stack`)."""
    if spec.output == "labels":
        return labels_from_softmax(prob, spec.classes)
    return merge_regions({r: prob[i] > 0.5 for i, r in enumerate(("WT", "TC", "ET"))}, keep_hierarchy)


def region_stack(mean: np.ndarray, spec: ModelSpec, keep_hierarchy: bool = True) -> np.ndarray:
    """What :func:`decode` reads: class probabilities for ``labels`` models, the WT, TC, ET region
    probabilities (nested when ``keep_hierarchy``) for ``regions`` models."""
    if spec.output == "labels":
        return mean
    return np.stack(list(region_probabilities(mean, spec.output, spec.regions, keep_hierarchy).values()))


def to_case_grid(out: NetworkOutput, placement: Placement, spec: ModelSpec, keep_hierarchy: bool = True,
                 probabilities: bool = False
                 ) -> tuple[np.ndarray, dict[str, np.ndarray] | None, np.ndarray | None]:
    """Labels, region probabilities (when asked) and TTA uncertainty on the case's grid.

    The probabilities are restored and decoded once on the case's grid; on an exact placement (no
    resampling) the labels are decoded first and restored, which is the same and needs less memory.
    """
    scores = region_stack(out.mean, spec, keep_hierarchy)
    fill = background_fill(spec) if spec.output == "labels" else 0.0
    if placement.exact and not (probabilities and spec.output == "labels"):
        labels = placement.restore(decode(scores, spec, keep_hierarchy), labels=True)
        full = placement.restore(scores, fill=fill) if probabilities else None
    else:
        full = placement.restore(scores, fill=fill)
        labels = decode(full, spec, keep_hierarchy)
    probs = None
    if probabilities and full is not None:
        names = spec.classes if spec.output == "labels" else ("WT", "TC", "ET")
        reg = region_probabilities(full, spec.output if spec.output == "labels" else "regions", names, False)
        probs = {r: p.astype(np.float32, copy=False) for r, p in reg.items()}
    unc = None
    if out.s1 is not None and out.s2 is not None:
        n = out.flips
        std = np.sqrt(np.clip(out.s2 / n - (out.s1 / n) ** 2, 0, None)).max(axis=0).astype(np.float32)
        unc = placement.restore(std)
    return labels, probs, unc


def _weights_id(model: LoadedModel, spec: ModelSpec, runtime: str, device: torch.device) -> str | None:
    """The weights' identity when an exported runtime will run ``model`` (its cache key), else None."""
    from .runtimes import choose

    if spec.self_tiling or choose(runtime, spec, device) == "torch":  # self-tiling: its own runtime, own cache
        return None
    from .models.registry import weights_id

    return weights_id(model)


def predict(case: Case, model: LoadedModel, *, device: str | torch.device = "auto", tta: bool = False,
            probabilities: bool = False, postprocess: Mapping[str, Any] | None = None,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
            precision: str = "auto", overlap: float = DEFAULT_OVERLAP, crop: bool | None = None,
            runtime: str = "auto") -> Segmentation:
    """Segment ``case`` with ``model``: prepare, run, restore, decode (see the module docstring).

    A model trained at another voxel spacing (``spec.spacing`` differing by more than 25 % on an
    axis, e.g. the shipped 2 mm models on 1 mm BraTS data) runs on the case resampled to its spacing;
    its probabilities are brought back to the case's grid before labels, post-processing,
    probabilities and uncertainty are made, and ``info["resampled"]`` says so.

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
        ``{"et_min_voxels": int, "min_component_voxels": int, "keep_hierarchy": bool,
        "keep_largest": bool}`` (:mod:`.postprocess`). An option left out takes the model's recorded
        choice (``spec.provenance["postprocess"]``, e.g. ``{"keep_largest": true}`` chosen on
        cross-validation), else the default; ``info["postprocess"]`` says what was applied.
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
    runtime
        ``"auto"`` (the fastest runtime measured to agree with torch on this kind of CPU, see
        :mod:`.runtimes`), ``"torch"``, ``"onnxruntime"`` or ``"openvino"``; ``info["runtime"]`` records
        the one that ran.

    Raises
    ------
    ModelError
        The model does not fit the case.
    InferenceError
        The network failed (message included), or ran out of memory on every fallback.
    Cancelled
        ``cancel`` was set.
    """
    t0 = time.perf_counter()
    keep_freed_memory()
    spec = model.spec
    recorded = spec.provenance.get("postprocess") if isinstance(spec.provenance, dict) else None
    opts = merge_options(recorded, postprocess)
    warn = spec.check_case(case)
    dev = resolve_device(device)
    check(cancel)
    # the whole-case copies are freed inside prepare(), before the network runs: its feature maps
    # then reuse their pages (core.memory), which spares page faults on the first case of a process
    x, placement = prepare(case, spec, crop=crop, self_tiling=spec.self_tiling)
    out = run_network(model.network, spec, x, placement, device=dev, precision=precision, tta=tta,
                      overlap=overlap, want_regions=probabilities or tta, keep_hierarchy=opts["keep_hierarchy"],
                      on_progress=on_progress, cancel=cancel, what=f"case {case.case_id}", runtime=runtime,
                      weights_id=_weights_id(model, spec, runtime, dev))
    del x
    check(cancel)
    labels, probs, unc = to_case_grid(out, placement, spec, opts["keep_hierarchy"], probabilities)
    info = {
        "model": spec.name, "family": spec.family, "source": model.source, "device": str(out.device),
        "dtype": out.precision.label, "runtime": out.runtime, "seconds": round(time.perf_counter() - t0, 3),
        "windows": out.units,
        "mode": out.mode, "tta": out.flips, "window": list(out.window),
        "crop": [[s.start, s.stop] for s in placement.crop_box], "fallbacks": out.fallbacks, "warnings": warn,
        "placement": placement.to_dict(),
    }
    grid = placement.find(Resample)
    if grid is not None:
        info["resampled"] = {"spacing_zyx": list(grid.spacing), "shape_zyx": list(grid.out_shape)}
    cleaned = clean_labels(labels, opts)
    info["postprocess"] = summary(opts, recorded, postprocess, labels, cleaned)
    return Segmentation(labels=cleaned, probabilities=probs, uncertainty=unc, info=info)


__all__ = ["BRAIN_MARGIN", "SLICE_BATCH", "NetworkOutput", "Segmentation", "decode", "plan_windows", "predict",
           "run_network", "to_case_grid"]
