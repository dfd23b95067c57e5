"""The simulated user of ``bench_correction.py``: where it looks, which tool it picks, what it does.

Each step finds the largest error region (a false-positive or false-negative 26-connected
component of one class), takes its interior point farthest from the region's border (Euclidean
distance transform) and acts there. The user sees the ground truth only through that error region
(as a radiologist sees, on the image, where the labels are wrong and what lies there): the region,
its kind (false positive / false negative of class ``c``) and the true class of its voxels. Nothing
is undone by checking the ground truth: every action counts, good or bad.

Two arms:

- :func:`brush_step`: one stroke of napari's brush, a disc of fixed radius in the axial slice of the
  point, painting the class the user sees there (background erases);
- :func:`tool_step`: the tool a user would pick, :func:`choose` says which:

  * ``delete``: the error is a false positive covering (nearly) a whole predicted component of
    background truth: one click of *Pick a component* (the whole tumour component when all of it is
    false, else the class's component);
  * ``relabel``: the predicted component under the point is (nearly) all of another true class:
    one click, *relabel* to that class;
  * ``grow`` / ``shrink``: the error is a shell around the predicted class (it covers most of the
    class's outer / inner boundary): *Margin* of the class by the shell's thickness (twice the
    region's largest inscribed radius, in mm);
  * ``masked``: otherwise one dab of the intensity-limited 3D brush (radius ``radius_mm``; window
    picked from the voxel: FLAIR for edema and background, T1ce for the core).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import components, margins, masks
from napari_brats_seg.core.edit._common import bbox

#: 26-connectivity.
CONN = np.ones((3, 3, 3), dtype=bool)
#: A component is "whole" when the error region covers at least this fraction of it.
WHOLE = 0.9
#: An error region is a shell when it covers at least this fraction of the class's boundary.
SHELL = 0.6
#: Margins only for thin shells: largest inscribed radius at most this (voxels).
THIN = 3.0


@dataclass
class ErrorRegion:
    """One error component: ``kind`` ``"fp"`` or ``"fn"`` of class ``cls``, its mask and size."""

    kind: str
    cls: int
    mask: np.ndarray
    size: int


def region_dice(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Dice of WT, TC and ET (1 when both are empty)."""
    out = {}
    for name, classes in lab.REGION_CLASSES.items():
        p, g = np.isin(pred, classes), np.isin(gt, classes)
        s = int(p.sum() + g.sum())
        out[name] = 1.0 if s == 0 else 2.0 * int((p & g).sum()) / s
    return out


def largest_error(pred: np.ndarray, gt: np.ndarray) -> ErrorRegion | None:
    """The largest false-positive or false-negative 26-connected component of any tumour class."""
    best: ErrorRegion | None = None
    for c in lab.TUMOUR_CLASSES:
        for kind, err in (("fp", (pred == c) & (gt != c)), ("fn", (gt == c) & (pred != c))):
            box = bbox(err, 0)
            if box is None:
                continue
            comp, n = ndimage.label(err[box], structure=CONN)
            counts = np.bincount(comp.ravel())[1:]
            k = int(np.argmax(counts))
            if best is None or counts[k] > best.size:
                mask = np.zeros(err.shape, dtype=bool)
                mask[box] = comp == k + 1
                best = ErrorRegion(kind, int(c), mask, int(counts[k]))
    return best


def interior_point(mask: np.ndarray) -> tuple[tuple[int, int, int], float]:
    """The voxel of ``mask`` farthest from its border, and that distance (voxels, in-plane units)."""
    box = bbox(mask, 1)
    d = ndimage.distance_transform_edt(mask[box])
    local = np.unravel_index(int(np.argmax(d)), d.shape)
    return tuple(int(i + b.start) for i, b in zip(local, box)), float(d[local])  # type: ignore[return-value]


def _majority(values: np.ndarray) -> tuple[int, float]:
    counts = np.bincount(values.ravel(), minlength=4)
    k = int(np.argmax(counts))
    return k, float(counts[k]) / max(int(counts.sum()), 1)


def _shell_fraction(region: np.ndarray, cls_mask: np.ndarray, outer: bool) -> float:
    """The fraction of the class's outer (or inner) one-voxel boundary that the region covers."""
    if outer:
        rim = ndimage.binary_dilation(cls_mask, structure=CONN) & ~cls_mask
    else:
        rim = cls_mask & ~ndimage.binary_erosion(cls_mask, structure=CONN)
    n = int(rim.sum())
    return 0.0 if n == 0 else float((rim & region).sum()) / n


def _touching(pred: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The predicted tumour components (26-connected) that touch ``region``: the tumour the user looks at."""
    comp, _ = ndimage.label(pred != lab.BACKGROUND, structure=CONN)
    ids = np.unique(comp[ndimage.binary_dilation(region, structure=CONN)])
    return np.isin(comp, ids[ids > 0])


def choose(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion, p: tuple[int, int, int], depth: float,
           history: list[tuple[str, int]] | None = None) -> tuple[str, int]:
    """The tool a user picks for error ``err`` at point ``p``, and the class it paints.

    Returns ``(tool, cls)``: tool ``"delete"``, ``"delete-tumour"``, ``"relabel"``, ``"grow"``,
    ``"shrink"`` or ``"masked"``.
    """
    true = int(gt[p])
    if pred[p] != lab.BACKGROUND:
        comp = components.component_at(pred, p, "class")
        seen, share = _majority(gt[comp & err.mask])
        if err.mask[comp].mean() >= WHOLE and share >= 0.5:
            if seen == lab.BACKGROUND:
                whole = components.component_at(pred, p, "tumour")
                if (gt[whole] == lab.BACKGROUND).mean() >= WHOLE:
                    return "delete-tumour", 0
                return "delete", 0
            return "relabel", seen
    cls_mask = (pred == err.cls) & _touching(pred, err.mask)
    undone = {("shrink" if t == "grow" else "grow", c) for t, c in (history or []) if t in ("grow", "shrink")}
    if cls_mask.any() and depth <= THIN:
        near = bbox(err.mask | cls_mask, 2)
        if err.kind == "fn" and pred[p] == lab.BACKGROUND and \
                _shell_fraction(err.mask[near], cls_mask[near], outer=True) >= SHELL and ("grow", err.cls) not in undone:
            return "grow", err.cls
        if err.kind == "fp" and true == lab.BACKGROUND and \
                _shell_fraction(err.mask[near], cls_mask[near], outer=False) >= SHELL and ("shrink", err.cls) not in undone:
            return "shrink", err.cls
    return "masked", true


def brush_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], radius: int,
               **_: object) -> tuple[np.ndarray, str]:
    """One napari brush stroke: a disc of ``radius`` voxels in slice ``p[0]``, the class seen at ``p``."""
    out = pred.copy()
    yy, xx = np.ogrid[: pred.shape[1], : pred.shape[2]]
    disc = (yy - p[1]) ** 2 + (xx - p[2]) ** 2 <= radius ** 2
    out[p[0]][disc] = gt[p]
    return out, "brush"


def tool_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], err: ErrorRegion, depth: float,
              images: dict[str, np.ndarray], spacing: tuple[float, float, float], radius_mm: float,
              history: list[tuple[str, int]], **_: object) -> tuple[np.ndarray, str]:
    """The plugin tool the user picks (:func:`choose`) applied at ``p``.

    ``depth`` is the error region's largest inscribed radius (voxels): margins move the class by it,
    and the intensity-limited brush is sized to it (at least 1.5 voxels, at most ``radius_mm``), as a user
    sizes a brush to the region. ``history`` (the tools used so far, appended to) keeps the user
    from undoing one margin with the opposite one.
    """
    tool, cls = choose(pred, gt, err, p, depth, history)
    history.append((tool, cls))
    step = float(min(spacing))
    if tool == "delete-tumour":
        return components.delete_component(pred, p, "tumour"), tool
    if tool == "delete":
        return components.delete_component(pred, p, "class"), tool
    if tool == "relabel":
        return components.relabel_component(pred, p, cls, "class"), tool
    if tool in ("grow", "shrink"):
        mm = max(float(round(depth)), 1.0) * step
        return margins.margin(pred, cls, mm if tool == "grow" else -mm, spacing), tool
    image = images["flair"] if cls in (lab.EDEMA, lab.BACKGROUND) else images["t1ce"]
    lo, hi = masks.window_at(image, p)
    v = float(image[p])
    radius = min(max(depth, 1.5) * step, float(radius_mm))
    return masks.masked_brush(pred, image, p, radius, cls, (min(lo, v), max(hi, v)), spacing, axis=None), tool
