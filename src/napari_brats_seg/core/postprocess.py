"""From network outputs to clean label maps: decoding, region merging, BraTS clean-ups.

Decoding
--------
- :func:`labels_from_softmax`: ``output == "labels"`` models: argmax over the channels whose class
  is not -1, channel mapped to its internal class (0 bg, 1 NCR, 2 ED, 3 ET, 4 RC).
- :func:`merge_regions`: ``output == "regions"`` models (sigmoid WT/TC/ET channels, thresholded at
  0.5) to labels. With ``keep_hierarchy`` (default) the regions are nested by union, as the BraTS
  region hierarchy reads (a voxel in ET is enhancing, else in TC necrotic, else in WT edema: ET
  inside TC inside WT, :func:`~.labels.regions_to_labels`); without it by intersection (ET only
  where TC and WT also fire, NCR only where WT fires): a conservative reading that drops
  inconsistent voxels to background.
- :func:`region_probabilities`: per-region probability maps of either kind of output.

Clean-ups (:func:`clean_labels`, the ``postprocess`` options of ``predict`` and ``brats-seg
segment``)
--------------------------------------------------------------------------------------------------
``min_component_voxels``
    Connected components of the whole tumour (26-connectivity) smaller than this become background.
``keep_largest``
    Only the largest 26-connected component of the whole tumour is kept, everything else becomes
    background (the classes inside it are kept as they are). nnU-Net's post-processing, applied
    when it raised the cross-validated Dice of the model's recipe: a checkpoint records that choice
    in ``spec.provenance["postprocess"]`` (``scripts/choose_postprocess.py``), which
    :func:`merge_options` applies for every option the caller does not set.
``et_min_voxels``
    When the case's total enhancing tumour is below this many voxels (after the step above), it is
    relabelled necrotic core: the BraTS practice that avoids a false-positive ET on tumours without
    enhancement, where an empty ET scores Dice 1.

The clean-ups run in this order (``min_component_voxels``, ``keep_largest``, ``et_min_voxels``), so
the ET total is counted on the tumour that is kept.
``keep_hierarchy``
    How region outputs are merged (above). Label outputs are nested by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from . import labels as lab
from .errors import InferenceError

#: Options accepted in ``postprocess`` dicts, with their defaults (no clean-up).
DEFAULT_OPTIONS: dict[str, Any] = {"et_min_voxels": 0, "min_component_voxels": 0, "keep_hierarchy": True,
                                   "keep_largest": False}
#: The options that are switches (the others are voxel counts).
BOOL_OPTIONS = ("keep_hierarchy", "keep_largest")
#: Internal classes of each region (resection cavity, class 4, belongs to none).
REGION_CLASSES = lab.REGION_CLASSES


def check_options(options: Mapping[str, Any] | None, strict: bool = False) -> dict[str, Any]:
    """Validate a ``postprocess`` dict and fill in defaults.

    Parameters
    ----------
    options
        Option -> value; missing options take :data:`DEFAULT_OPTIONS`.
    strict
        Accept only a JSON ``true``/``false`` for the switches and a whole number for the counts (what
        a checkpoint records, :func:`check_recorded`), instead of anything ``bool()`` or ``int()`` reads.

    Raises
    ------
    InferenceError
        Naming an unknown option, a value of the wrong type or a negative threshold.
    """
    if options is not None and not isinstance(options, Mapping):
        raise InferenceError(f"postprocess options must be a mapping of option to value, got {options!r}")
    out = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in DEFAULT_OPTIONS:
            raise InferenceError(f"unknown postprocess option {key!r}; known: {', '.join(DEFAULT_OPTIONS)}")
        if key in BOOL_OPTIONS:
            if strict and not isinstance(value, bool):
                raise InferenceError(f"postprocess option {key} must be true or false, got {value!r}")
            out[key] = bool(value)
            continue
        if strict and (isinstance(value, bool) or not isinstance(value, int)):
            raise InferenceError(f"postprocess option {key} must be a whole number, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InferenceError(f"postprocess option {key} must be a whole number, got {value!r}") from None
        if number < 0:
            raise InferenceError(f"postprocess option {key} must be >= 0, got {number}")
        out[key] = number
    return out


def check_recorded(options: Any) -> dict[str, Any]:
    """The options a checkpoint records (``spec.provenance["postprocess"]``), strictly checked.

    Returns
    -------
    dict
        Only the recorded options (no defaults filled in), so that :func:`merge_options` applies
        exactly those.

    Raises
    ------
    InferenceError
        Not a mapping, an unknown option, or a value of the wrong type (see :func:`check_options`).
    """
    if not isinstance(options, Mapping):
        raise InferenceError(f"postprocess must be a mapping of option to value, got {options!r}")
    checked = check_options(options, strict=True)
    return {key: checked[key] for key in options}


def merge_options(recorded: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options to apply: the model's recorded choice, overridden per key by the caller's options.

    Parameters
    ----------
    recorded
        The checkpoint's ``spec.provenance.get("postprocess")`` (None: nothing recorded).
    given
        The caller's ``postprocess`` (None: nothing set); an option it sets wins, one it leaves out
        keeps the recorded value, then the default.
    """
    return check_options({**check_recorded(recorded or {}), **(given or {})})


def summary(opts: Mapping[str, Any], recorded: Mapping[str, Any] | None, given: Mapping[str, Any] | None,
            before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """What the clean-ups did, for ``Segmentation.info["postprocess"]``.

    Parameters
    ----------
    opts
        The options applied (:func:`merge_options`).
    recorded, given
        The model's recorded options and the caller's, as passed to :func:`merge_options`.
    before, after
        The labels before and after :func:`clean_labels`.

    Returns
    -------
    dict
        ``options`` (every option, as applied), ``from_model`` (the options whose value is the
        model's recorded choice, the caller having left them out) and ``removed_voxels`` (tumour
        voxels set to background).
    """
    from_model = sorted(k for k in (recorded or {}) if k not in (given or {}))
    tumour = list(REGION_CLASSES["WT"])
    removed = int(np.isin(before, tumour).sum()) - int(np.isin(after, tumour).sum())
    return {"options": dict(opts), "from_model": from_model, "removed_voxels": removed}


def labels_from_softmax(prob: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Internal labels from per-channel scores ``(K, ...)``; channels of class -1 are never chosen."""
    classes = list(classes)
    if len(classes) != prob.shape[0]:
        raise InferenceError(f"model has {prob.shape[0]} output channels but its spec names {len(classes)} classes")
    usable = [i for i, c in enumerate(classes) if c >= 0]
    if not usable:
        raise InferenceError("model spec maps no output channel to a class")
    best = np.argmax(prob[usable], axis=0)
    lut = np.asarray([classes[i] for i in usable], dtype=np.uint8)
    return lut[best]


def merge_regions(masks: Mapping[str, np.ndarray], keep_hierarchy: bool = True) -> np.ndarray:
    """Internal labels from boolean ``WT``, ``TC`` and ``ET`` masks (see the module docstring)."""
    missing = {"WT", "TC", "ET"} - set(masks)
    if missing:
        raise InferenceError(f"region outputs lack {', '.join(sorted(missing))}")
    wt, tc, et = (np.asarray(masks[r], bool) for r in ("WT", "TC", "ET"))
    if keep_hierarchy:
        return lab.regions_to_labels(wt, tc, et)
    tc = tc & wt
    et = et & tc
    return lab.regions_to_labels(wt, tc, et)


def region_probabilities(prob: np.ndarray, spec_output: str, names: Sequence[int] | Sequence[str],
                         keep_hierarchy: bool = True) -> dict[str, np.ndarray]:
    """Per-region probability maps (float32) from a model's probabilities ``(K, ...)``.

    Parameters
    ----------
    prob
        Softmax (``spec_output == "labels"``) or sigmoid (``"regions"``) probabilities.
    spec_output
        ``"labels"`` or ``"regions"``.
    names
        ``spec.classes`` (labels) or ``spec.regions`` (regions).
    keep_hierarchy
        For regions: make them nested, ``p(TC) >= p(ET)`` and ``p(WT) >= p(TC)``, matching the
        union merge of the labels. Softmax region sums are nested already.
    """
    out: dict[str, np.ndarray] = {}
    if spec_output == "labels":
        for region, members in REGION_CLASSES.items():
            idx = [i for i, c in enumerate(names) if c in members]
            out[region] = (prob[idx].sum(axis=0) if idx else np.zeros(prob.shape[1:])).astype(np.float32)
        return out
    for i, region in enumerate(names):
        out[str(region)] = prob[i].astype(np.float32, copy=False)
    if keep_hierarchy and {"WT", "TC", "ET"} <= set(out):
        out["TC"] = np.maximum(out["TC"], out["ET"])
        out["WT"] = np.maximum(out["WT"], out["TC"])
    return {r: out[r] for r in ("WT", "TC", "ET") if r in out}


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Set whole-tumour components (26-connected) smaller than ``min_voxels`` to background."""
    out = np.array(labels, dtype=np.uint8, copy=True)
    if min_voxels <= 0:
        return out
    tumour = np.isin(out, REGION_CLASSES["WT"])
    comp, n = ndimage.label(tumour, structure=np.ones((3,) * out.ndim, bool))
    if n == 0:
        return out
    sizes = np.bincount(comp.ravel())
    small = sizes < min_voxels
    small[0] = False
    out[small[comp]] = lab.BACKGROUND
    return out


def keep_largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep only the largest whole-tumour component (26-connected); the rest becomes background.

    The classes inside the kept component are unchanged. Of components of equal size the first in
    scan order (:func:`scipy.ndimage.label`'s numbering) is kept.
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    tumour = np.isin(out, REGION_CLASSES["WT"])
    comp, n = ndimage.label(tumour, structure=np.ones((3,) * out.ndim, bool))
    if n <= 1:
        return out
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    out[tumour & (comp != int(np.argmax(sizes)))] = lab.BACKGROUND
    return out


def relabel_small_et(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Relabel all enhancing tumour as necrotic core when its total is below ``min_voxels``."""
    out = np.array(labels, dtype=np.uint8, copy=True)
    et = out == lab.ENHANCING
    n = int(et.sum())
    if 0 < n < min_voxels:
        out[et] = lab.NECROTIC
    return out


def clean_labels(labels: np.ndarray, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Apply ``min_component_voxels``, ``keep_largest``, then ``et_min_voxels`` (see the module docstring)."""
    opts = check_options(options)
    out = remove_small_components(labels, opts["min_component_voxels"])
    if opts["keep_largest"]:
        out = keep_largest_component(out)
    return relabel_small_et(out, opts["et_min_voxels"])
