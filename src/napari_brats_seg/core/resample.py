"""Run a model at the voxel spacing it was trained at: resample a case, predict, map back.

Models trained at reduced resolution (e.g. the shipped defaults, trained at 2 mm on 1 mm BraTS
data) record ``ModelSpec.spacing`` in model-axis order. :func:`~.inference.predict` then uses
:func:`predict_resampled`: the case's images are resampled to that spacing (trilinear,
``align_corners=False``; for a factor of 2 that is the 2x2x2 block mean the training data went
through), the network runs there, the region probabilities are upsampled back to the case's grid
(trilinear) and decoded with the region hierarchy (WT, TC, ET at probability > 0.5). A model whose
spacing is within 25 % of the case's runs directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import preprocess as pp
from .case import Case
from .geometry import Geometry
from .postprocess import check_options, clean_labels, merge_regions

#: Relative spacing difference under which no resampling is done.
TOLERANCE = 0.25


def internal_spacing(spec_spacing: Sequence[float], orientation: str = "LPS") -> tuple[float, float, float]:
    """``ModelSpec.spacing`` (model axes) as spacing of the internal ``(z, y, x)`` axes."""
    perm, _ = pp._axes_plan(orientation)
    out = [0.0, 0.0, 0.0]
    for model_axis, internal_axis in enumerate(perm):
        out[internal_axis] = float(spec_spacing[model_axis])
    return tuple(out)  # type: ignore[return-value]


def needs_resampling(case_spacing: Sequence[float], target: Sequence[float]) -> bool:
    """True when any axis differs by more than :data:`TOLERANCE` (relative)."""
    return any(abs(a - b) > TOLERANCE * b for a, b in zip(case_spacing, target))


def _resize(arr: np.ndarray, shape: Sequence[int], mode: str = "trilinear") -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(int(s) for s in shape), mode=mode, align_corners=False)[0, 0].numpy()


def resample_case(case: Case, spacing: Sequence[float]) -> Case:
    """A copy of ``case`` on a grid of internal ``(z, y, x)`` ``spacing`` (images only, no labels).

    The new grid covers the same field of view; its geometry is an LPS-stored grid whose voxel
    centres lie where trilinear resampling (``align_corners=False``) puts them.
    """
    old = np.asarray(case.shape)
    ratio = np.asarray(case.spacing, float) / np.asarray(spacing, float)
    new = np.maximum(np.round(old * ratio).astype(int), 1)
    images = {m: _resize(a, new) for m, a in case.images.items()}
    scale = old / new  # old voxels per new voxel, per internal axis
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * scale - 0.5
    internal_affine = case.geometry.internal_affine @ m
    swap = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    file_affine = internal_affine @ swap  # file order (x, y, z) = internal reversed
    hdr = case.geometry.header.copy()
    hdr.set_data_shape(tuple(int(s) for s in new[::-1]))
    geo = Geometry(tuple(int(s) for s in new[::-1]), file_affine, hdr)
    return Case(case.case_id, images, geo, case.layout)


def predict_resampled(case: Case, model: Any, target: Sequence[float], native: Callable[..., Any], *,
                      probabilities: bool = False, postprocess: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> Any:
    """Run ``native`` (``inference``'s on-grid predictor) at internal ``target`` spacing; map back.

    Called by :func:`~.inference.predict` when the model's spacing differs from the case's. The
    region probabilities come back to ``case``'s grid (trilinear) and are decoded there with the
    region hierarchy; post-processing runs on those full-resolution labels. The returned
    ``Segmentation`` has ``info["resampled"]`` (the spacing and shape it ran at); its probabilities
    (when asked) and uncertainty are upsampled too.
    """
    opts = check_options(postprocess)
    small = resample_case(case, target)
    seg = native(small, model, probabilities=True, postprocess=None, **kwargs)
    probs = {r: _resize(p, case.shape) for r, p in (seg.probabilities or {}).items()}
    if {"WT", "TC", "ET"} <= set(probs):
        labels = merge_regions({r: probs[r] > 0.5 for r in ("WT", "TC", "ET")}, opts["keep_hierarchy"])
    else:  # no region probabilities: nearest-neighbour labels
        labels = np.rint(_resize(seg.labels.astype(np.float32), case.shape, "nearest")).astype(np.uint8)
    seg.labels = clean_labels(labels, opts)
    seg.probabilities = probs if probabilities else None
    if seg.uncertainty is not None:
        seg.uncertainty = _resize(seg.uncertainty, case.shape)
    seg.info["resampled"] = {"spacing_zyx": list(target), "shape_zyx": list(small.shape)}
    return seg
