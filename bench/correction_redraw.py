"""Redraw on a few slices, as the simulated user of ``bench_correction.py`` does it.

The tool (:mod:`napari_brats_seg.core.edit.redraw`, the Correct widget's *Redraw on a few slices*
with *Redraw again as outlines are added* on): the user draws the region's true outline on a slice
of an outline layer, one drag around each part of it, and the region between the first and last
outlined slice becomes the interpolation of the outlines. The simulated user:

- on a new region (the whole tumour, or the tumour core when the error is a confusion of the core
  with edema): *New outline layer* (one click), and one click to pick the region and the class of
  its new voxels when they differ from the widget's defaults (whole tumour, edema); the user keeps
  one outline layer per region and going back to another region's layer is one click;
- outlines the region on the axial slice through the error's point (when that slice is outlined
  already: on the error region's slice farthest from the outlined ones), one drag per part of the
  region's section there of at least :data:`MIN_PART` voxels (a reader skips specks); every drag
  re-applies the redraw (its compute time is the interaction's).

The outline is the region's true section on that slice, holes filled: the reader traces the border
they see on the whole slice (slice-wise tools are simulated this way: a contour drawn on the slice,
not a stroke into the error region alone). What the interpolation makes of the slices between is
not checked against the ground truth, and counts as it comes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from correction_actions import key_slices
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import redraw

if TYPE_CHECKING:
    from correction_sim import ErrorRegion

#: Whether confusions of the core with edema are redrawn too (as the core).
#: Off by default (``bench_correction.py --redraw-core``): on the 12 shared cases it cost more
#: interactions than grow from seeds and the masked brush there.
REDRAW_CORE = False
#: Parts of a section smaller than this (voxels) are not outlined.
MIN_PART = 20

Steps = list[tuple[np.ndarray, str, float]]


@dataclass
class RedrawSession:
    """The outline layer the user keeps drawing into, and what the last redraw started from and made."""

    region: str
    fill: int
    outlines: np.ndarray
    marked: set[int] = field(default_factory=set)
    before: np.ndarray | None = None
    after: np.ndarray | None = None


def region_of(err: ErrorRegion, right: int, wrong: int) -> tuple[str, int] | None:
    """What a user redraws for this error: ``(region, class of new voxels)``, or None.

    The whole tumour (new voxels edema) when the error lies at its border (the truth or the label is
    background); the tumour core when the core is confused with edema (new voxels of the core class
    involved); None for a confusion inside the core.
    """
    if lab.BACKGROUND in (right, wrong):
        return "WT", lab.EDEMA
    if REDRAW_CORE and lab.EDEMA in (right, wrong):
        return "TC", right if right != lab.EDEMA else wrong
    return None


def outline_parts(section: np.ndarray) -> list[np.ndarray]:
    """The outlines a reader draws on one slice's true section, one drag each, largest first: its
    parts of at least :data:`MIN_PART` voxels, holes filled."""
    comp, n = ndimage.label(ndimage.binary_fill_holes(section))
    if n == 0:
        return []
    sizes = np.bincount(comp.ravel())[1:]
    order = [k + 1 for k in np.argsort(-sizes) if sizes[k] >= MIN_PART]
    return [comp == k for k in order]


def _slice_for(err: ErrorRegion, p: tuple[int, int, int], session: RedrawSession,
               spacing: tuple[float, float, float]) -> int | None:
    if p[0] not in session.marked:
        return int(p[0])
    zs = key_slices(err.mask, spacing, marked=session.marked)
    return zs[0] if zs else None


def redraw_action(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion, p: tuple[int, int, int],
                  spacing: tuple[float, float, float], state: dict[str, object]) -> Steps | None:
    """Outline the region on one more slice and redraw: one ``(labels, tool, s)`` per interaction.

    Returns None when there is nothing to redraw here (a confusion inside the core, or every slice
    of the region outlined already): the caller picks another tool.
    """
    from correction_sim import region_labels

    right, wrong = region_labels(pred, gt, err)
    what = region_of(err, right, wrong)
    if what is None:
        return None
    sessions = state.setdefault("redraw", {})
    assert isinstance(sessions, dict)
    session = sessions.get(what)
    steps: Steps = []
    if session is None:
        session = RedrawSession(what[0], what[1], np.zeros(pred.shape, dtype=np.uint8))
        steps.append((pred, "redraw:new-layer", 0.0))
        if what != ("WT", lab.EDEMA):
            steps.append((pred, "redraw:pick-region", 0.0))
    elif state.get("redraw-last") != what:          # back to this region's outline layer
        steps.append((pred, "redraw:switch", 0.0))
    z = _slice_for(err, p, session, spacing)
    parts = outline_parts(np.isin(gt[z], lab.REGION_CLASSES[what[0]])) if z is not None else []
    if not parts:                                    # no true section there to outline: another tool
        return None
    sessions[what], state["redraw-last"] = session, what
    session.marked.add(z)
    start = session.before if session.after is not None and pred is session.after else pred
    out = pred
    for part in parts:                               # each drag re-applies the redraw (auto mode)
        session.outlines[z][part] = 1
        t0 = time.perf_counter()
        out = redraw.redraw(start, session.outlines, session.region, session.fill, spacing=spacing)
        steps.append((out, "redraw:outline", time.perf_counter() - t0))
    session.before, session.after = start, out
    return steps
