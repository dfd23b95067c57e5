"""Preprocessing steps; each returns what its inverse needs.

- :func:`to_model_axes` / :func:`from_model_axes`: internal ``(z, y, x)`` LPS arrays to the voxel
  order a model was trained on (its ``ModelSpec.orientation``, e.g. ``"LPS"`` = array axes
  ``(x->L, y->P, z->S)``, the BraTS files' stored order) and back. Permutations and flips only.
- :func:`brain_mask`, :func:`bounding_box`, :func:`crop`, :func:`uncrop`.
- :func:`normalize`, :func:`normalizer`: per-channel intensity normalisation by name (``zscore_brain``,
  ``nonzero_channelwise``, ``deepmedic``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

_AXIS_OF = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}
_POSITIVE = ("L", "P", "S")


def _axes_plan(axcodes: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    codes = tuple(axcodes.upper())
    if len(codes) != 3 or sorted(_AXIS_OF[c] for c in codes) != [0, 1, 2]:
        raise ValueError(f"orientation {axcodes!r} is not three distinct axis codes like 'LPS' or 'RAS'")
    # internal array axes: 0 = z (S), 1 = y (P), 2 = x (L)
    internal_axis = {0: 2, 1: 1, 2: 0}
    perm = tuple(internal_axis[_AXIS_OF[c]] for c in codes)
    flips = tuple(c not in _POSITIVE for c in codes)
    return perm, flips


def to_model_axes(arr: np.ndarray, axcodes: str = "LPS") -> np.ndarray:
    """Reorder the last three axes of an internal ``(..., z, y, x)`` array to ``axcodes`` voxel order."""
    perm, flips = _axes_plan(axcodes)
    lead = arr.ndim - 3
    out = np.transpose(arr, tuple(range(lead)) + tuple(lead + p for p in perm))
    for i, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=lead + i)
    return np.ascontiguousarray(out)


def from_model_axes(arr: np.ndarray, axcodes: str = "LPS") -> np.ndarray:
    """Inverse of :func:`to_model_axes` on the last three axes."""
    perm, flips = _axes_plan(axcodes)
    lead = arr.ndim - 3
    out = arr
    for i, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=lead + i)
    inv = np.argsort(perm)
    out = np.transpose(out, tuple(range(lead)) + tuple(lead + int(p) for p in inv))
    return np.ascontiguousarray(out)


def brain_mask(images: np.ndarray) -> np.ndarray:
    """A voxel is brain where any channel of ``(C, ...)`` is non-zero (the BraTS convention)."""
    return np.any(np.asarray(images) != 0, axis=0)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding every True voxel, grown by ``margin`` and clipped.

    An empty mask gives the whole array.
    """
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[ax])))
    return tuple(out)


def crop(arr: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Crop the last ``len(box)`` axes of ``arr`` to ``box``."""
    lead = (slice(None),) * (arr.ndim - len(box))
    return arr[lead + tuple(box)]


def uncrop(arr: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...], fill: Any = 0) -> np.ndarray:
    """Place a cropped array back into a full array of spatial ``shape`` (inverse of :func:`crop`)."""
    lead_shape = arr.shape[: arr.ndim - len(box)]
    out = np.full(lead_shape + tuple(shape), fill, dtype=arr.dtype)
    out[(slice(None),) * len(lead_shape) + tuple(box)] = arr
    return out


def zscore_brain(channel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` with mean and std of the brain voxels; zero outside the brain."""
    vals = channel[mask].astype(np.float64)
    if vals.size == 0:
        return np.zeros_like(channel, dtype=np.float32)
    std = vals.std() or 1.0
    out = ((channel - vals.mean()) / std).astype(np.float32)
    out[~mask] = 0
    return out


def deepmedic_normalize(channel: np.ndarray, mask: np.ndarray, pad: int = 0) -> np.ndarray:
    """CaPTk DeepMedic's z-score: mean and std of brain voxels inside robust cut-offs.

    Of the brain values, those strictly between their 5th and 95th percentiles and strictly within
    mean +- 3 std (both cut-offs computed on all brain values) give the mean and std; the whole
    channel is then ``(x - mean) / std`` (outside the brain too, as the original does).

    ``pad``: DeepMedic 0.8 pads the image *and its brain mask* by half the receptive field (mirror
    padding, numpy's ``"reflect"``) before it normalises, so the brain voxels of the ``pad`` slices next
    to each face of the volume are counted twice in these statistics. With ``pad > 0`` the statistics
    are those of the padded channel and mask, as the original computes them; the returned channel keeps
    the input's shape. It matters where the brain touches the volume's border (most BraTS cases touch
    the lowest axial slices).
    """
    if pad > 0 and min(channel.shape) > 1:
        stat_channel = np.pad(channel, pad, mode="reflect")
        stat_mask = np.pad(mask, pad, mode="reflect")
    else:
        stat_channel, stat_mask = channel, mask
    vals = stat_channel[stat_mask].astype(np.float64)
    if vals.size == 0:
        return np.zeros_like(channel, dtype=np.float32)
    lo, hi = np.percentile(vals, [5, 95])
    mu, sd = vals.mean(), vals.std()
    keep = vals[(vals > lo) & (vals < hi) & (vals > mu - 3 * sd) & (vals < mu + 3 * sd)]
    if keep.size == 0:
        keep = vals
    std = keep.std() or 1.0
    return ((channel - keep.mean()) / std).astype(np.float32)


def nonzero_channelwise(channel: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """MONAI ``NormalizeIntensity(nonzero=True, channel_wise=True)``: z-score of the non-zero voxels."""
    nz = channel != 0
    out = np.zeros_like(channel, dtype=np.float32)
    vals = channel[nz].astype(np.float64)
    if vals.size:
        out[nz] = (vals - vals.mean()) / (vals.std() or 1.0)
    return out


NORMALIZERS = {
    "zscore_brain": zscore_brain,
    "deepmedic": deepmedic_normalize,
    "nonzero_channelwise": nonzero_channelwise,
}


def normalizer(spec: Mapping[str, Any]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The per-channel function ``f(channel, mask) -> float32 channel`` that ``spec`` names.

    ``spec`` is ``{"kind": "zscore_brain" | "deepmedic" | "nonzero_channelwise" | "none"}``; any other
    keys are passed to the normaliser as keyword arguments (``{"kind": "deepmedic", "pad": 9}``).

    Raises
    ------
    ValueError
        An unknown kind, or a key its normaliser does not take.
    """
    kind = spec.get("kind", "zscore_brain")
    if kind == "none":
        return lambda channel, mask: np.asarray(channel, dtype=np.float32)
    if kind not in NORMALIZERS:
        raise ValueError(f"unknown normalisation {kind!r}; known: {', '.join(NORMALIZERS)}, none")
    fn = NORMALIZERS[kind]
    params = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(params) - set(inspect.signature(fn).parameters) - {"channel", "mask"})
    if unknown:
        raise ValueError(f"normalisation {kind!r} does not take {unknown}")
    return lambda channel, mask: np.asarray(fn(channel, mask, **params), dtype=np.float32)


def normalize(images: np.ndarray, spec: Mapping[str, Any], mask: np.ndarray | None = None) -> np.ndarray:
    """Normalise each channel of ``(C, ...)`` images as ``spec["kind"]`` says (:func:`normalizer`).

    Parameters
    ----------
    images
        Channels first.
    spec
        ``{"kind": ...}`` and the normaliser's keyword arguments (see :func:`normalizer`); a key it
        does not take is a ``ValueError``.
    mask
        Brain mask; computed with :func:`brain_mask` when None.
    """
    fn = normalizer(spec)
    if spec.get("kind", "zscore_brain") == "none":
        return np.asarray(images, dtype=np.float32)
    m = brain_mask(images) if mask is None else mask
    return np.stack([fn(c, m) for c in images]).astype(np.float32, copy=False)
