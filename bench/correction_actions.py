"""Region tools of the simulated user (``correction_sim``): grow from seeds, outline + fill between.

Both work on the *key slices* of an error region: 1 to 3 axial slices spread over its height (one
per :data:`KEY_MM` mm), as a reader marks the top, the middle and the bottom of a lesion.

- :func:`seeds_action` (*Grow again as strokes are added* on): on each key slice, one stroke of
  the region's true label along the region (napari's default brush, on the voxels of that label:
  placed where the ground truth says the label is, as a reader sees it on the image) and one
  stroke of the label it wrongly holds just outside it (on voxels truly of that label), each stroke
  one interaction into a seeds layer and each re-growing, with *May change* set to the wrong label
  (``editable``: a missed edema grows into background only, an overflowing one is carved out of
  the edema only); the grow's compute time is the stroke's time. When the region is still the
  largest error afterwards, the user adds strokes on one more slice into the same seeds layer. The
  user watches the grow (:data:`PREVIEW`): when the first grow of a new session made no visible
  progress on the region, the remaining key slices are not painted.
- :func:`outline_action`: on each key slice (at least three: top, middle, bottom), the region's
  outline dragged and filled in a scratch layer (two interactions), then *Fill between slices*
  (one) and *Between layers: union* into the corrected layer (one). When the region is still the
  largest error afterwards: *Undo* of the union, one more slice outlined, fill and union again.

The strokes are placed where the ground truth says the labels are, as interactive-segmentation
papers place simulated clicks; what the grow or the interpolation then makes of them is not
checked against the ground truth, and counts as it comes.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from correction_strokes import CAP_MM, deepest, stroke_inside, stroke_outside
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import grow, interpolate, logic

if TYPE_CHECKING:
    from correction_sim import ErrorRegion

#: One key slice per this many mm of the region's height (1 to 3 key slices).
KEY_MM = 15.0
#: Radius of a seed stroke at most (voxels): napari's default brush.
SEED_RADIUS = 5
#: Radius of a stroke just outside a region (voxels).
OUTSIDE_RADIUS = 3
#: How far around the strokes the random walker reaches (mm).
GROW_MARGIN_MM = 8.0
#: The walker's problem size: the widget's (``grow_from_seeds``' default).
GROW_VOXELS = grow.MAX_VOXELS
#: Whether the reader watches the grow's preview (*Grow again as strokes are added*): when the first
#: grow of a new seeds session (after the first key slice's two strokes) leaves the region as it was
#: (:func:`correction_sim.futile`), they stop painting there (``bench_correction.py --no-preview``:
#: every key slice painted whatever the preview shows, as in the previous rounds).
PREVIEW = True

Steps = list[tuple[np.ndarray, str, float]]


def key_slices(region: np.ndarray, spacing: tuple[float, float, float], minimum: int = 1,
               marked: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """The axial slices a reader marks: spread over the region's height, one per :data:`KEY_MM`.

    With ``marked`` (slices already holding strokes for this region) the one slice of the region
    farthest from every marked slice (ties: the larger section): where a new stroke helps most.
    """
    zs = np.flatnonzero(region.any(axis=(1, 2)))
    if marked:
        far = np.min(np.abs(zs[:, None] - np.array(sorted(marked))[None, :]), axis=1)
        areas = region[zs].sum(axis=(1, 2))
        best = np.lexsort((areas, far))[-1]
        return [int(zs[best])] if far[best] > 0 else []
    n = int(np.clip(np.ceil(len(zs) * spacing[0] / KEY_MM), minimum, 3))
    if n == 1:
        areas = region[zs].sum(axis=(1, 2))
        return [int(zs[int(np.argmax(areas))])]
    qs = np.linspace(0.1, 0.9, n)
    return sorted({int(zs[int(round(q * (len(zs) - 1)))]) for q in qs})


def _seed_value(label: int) -> int:
    return grow.BACKGROUND_SEED if label == lab.BACKGROUND else int(label)


def seed_strokes(gt: np.ndarray, err: ErrorRegion, right: int, wrong: int, spacing: tuple[float, float, float],
                 marked: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, np.ndarray, int]]:
    """The strokes a reader paints for a grow: ``(slice, 2D mask, seed value)`` in painting order
    (on the key slices; with ``marked``, on the one new slice farthest from those)."""
    cap = CAP_MM / spacing[1]
    out = []
    for z in key_slices(err.mask, spacing, marked=marked):
        region = err.mask[z] & (gt[z] == right)
        if not region.any():
            continue
        anchor, _ = deepest(region)
        inside = stroke_inside(region, anchor, SEED_RADIUS, cap) & (gt[z] == right)
        out.append((z, inside, _seed_value(right)))
        outside = stroke_outside(err.mask[z], gt[z] == wrong, OUTSIDE_RADIUS, cap)
        if outside.any():
            out.append((z, outside, _seed_value(wrong)))
    return out


@dataclass
class SeedSession:
    """The seeds (or scratch) layer the user keeps painting into while one region is being corrected."""

    right: int
    wrong: int
    region: np.ndarray
    seeds: np.ndarray
    marked: set[int] = field(default_factory=set)

    def same_region(self, err: ErrorRegion, right: int, wrong: int) -> bool:
        """Whether ``err`` is (what is left of) the region this session grows."""
        return (right, wrong) == (self.right, self.wrong) and bool((err.mask & self.region).any())


def seeds_action(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion, stack: np.ndarray,
                 spacing: tuple[float, float, float], state: dict[str, object] | None = None) -> Steps:
    """Grow from seeds with *Grow again as strokes are added* on: one ``(labels, tool, s)`` per interaction.

    A new region: *New seeds layer* (one click), then the strokes of the key slices; every stroke
    once both labels are painted re-grows (the interaction's time is that grow's). The same region
    again (the grow left part of it): strokes on one more slice, farthest from those marked, into
    the same seeds layer, each re-growing. A re-grow replaces the previous grow (written over the
    labels before the session's first grow), as the widget's does while the layer holds the
    previous grow's result.
    """
    from correction_sim import region_labels

    right, wrong = region_labels(pred, gt, err)
    state = {} if state is None else state
    session = state.get("seeds")
    steps: Steps = []
    if not isinstance(session, SeedSession) or not session.same_region(err, right, wrong):
        session = SeedSession(right, wrong, err.mask.copy(), np.zeros(pred.shape, dtype=np.uint8))
        state["seeds"], state["base"] = session, pred
        steps.append((pred, "seeds:new-layer", 0.0))
    session.region |= err.mask
    base = state["base"]
    strokes = seed_strokes(gt, err, right, wrong, spacing, session.marked)
    if not strokes:                                  # every slice of the region is marked: nothing new
        state.pop("seeds")
        return steps + [(pred, "seeds:stroke", 0.0)]
    out = pred
    fresh = bool(steps)
    grown = False
    for z, mask, value in strokes:
        session.seeds[z][mask] = value
        session.marked.add(z)
        t0 = time.perf_counter()
        with contextlib.suppress(grow.EditError):     # strokes of one kind so far: no grow yet
            out = grow.grow_from_seeds(base, stack, session.seeds, spacing, margin_mm=GROW_MARGIN_MM,
                                       max_voxels=GROW_VOXELS, editable=(wrong,))
            grown = True
        steps.append((out, "seeds:stroke", time.perf_counter() - t0))
        if PREVIEW and fresh and grown:
            from correction_sim import futile, wrong_near
            if futile(err, wrong_near(err, pred, gt), out, gt):
                break                                 # the preview shows no progress: stop painting
            fresh = False
    return steps


def outline_action(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion, spacing: tuple[float, float, float],
                   state: dict[str, object] | None = None) -> Steps:
    """Outline + fill on the key slices of a scratch layer, fill between, union into the labels.

    The same region again (still the largest error): one more slice outlined (the one farthest from
    those outlined), *Undo* of the previous union (one interaction), fill between and union again.
    """
    from correction_sim import region_labels

    right, wrong = region_labels(pred, gt, err)
    state = {} if state is None else state
    session = state.get("outline")
    steps: Steps = []
    if isinstance(session, SeedSession) and session.same_region(err, right, wrong):
        pred = state["base"]                          # type: ignore[assignment]
        steps.append((pred, "outline:undo", 0.0))
        slices = key_slices(err.mask, spacing, marked=session.marked)
    else:
        session = SeedSession(right, wrong, err.mask.copy(), np.zeros(pred.shape, dtype=np.uint8))
        state["outline"], state["base"] = session, pred
        slices = key_slices(err.mask, spacing, minimum=3)    # top, middle, bottom at least
    session.region |= err.mask
    for z in slices:
        comp, n = ndimage.label(err.mask[z])
        if n == 0:
            continue
        biggest = comp == 1 + int(np.argmax(np.bincount(comp.ravel())[1:]))
        t0 = time.perf_counter()
        session.seeds[z][ndimage.binary_fill_holes(biggest)] = right
        session.marked.add(z)
        steps += [(pred, "outline:drag", 0.0), (pred, "outline:fill", time.perf_counter() - t0)]
    t0 = time.perf_counter()
    filled = session.seeds
    with contextlib.suppress(interpolate.EditError):  # adjacent key slices: nothing between them to fill
        filled = interpolate.fill_between_slices(session.seeds, right, 0, spacing)
    steps.append((pred, "outline:between", time.perf_counter() - t0))
    t0 = time.perf_counter()
    out = logic.combine(pred, filled, "union", right)
    steps.append((out, "outline:union", time.perf_counter() - t0))
    return steps
