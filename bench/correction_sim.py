"""The simulated user of ``bench_correction.py``: where it looks, which tool it picks, what it does.

Each step finds the largest error region (a false-positive or false-negative 26-connected
component of one class), takes its interior point farthest from the region's border (Euclidean
distance transform) and acts there. The user sees the ground truth only through that error region
(as a radiologist sees, on the image, where the labels are wrong and what lies there): the region,
its kind (false positive / false negative of class ``c``) and the true class of its voxels. Nothing
is undone by checking the ground truth: every action counts, good or bad.

A step is one action of the user at that point; it may take several interactions (the strokes
then the click of grow from seeds), each counted and each returned with the labels after it and
the tool's own compute time (a stroke into the seeds layer changes no label). One stroke is one
drag in one slice (``correction_strokes.py`` says what it covers and why), in both arms.

Two arms:

- :func:`brush_step`: one stroke of napari's brush (fixed radius) in the axial slice of the point,
  painting the class the user sees there (background erases);
- :func:`tool_step`: the tool a user would pick, :func:`choose` says which, by what the region
  looks like (its size, shape and contrast on the image), never by the Dice it would give:

  * ``delete``: the error is a false positive covering (nearly) a whole predicted component of
    background truth: one click of *Pick a component* (the whole tumour component when all of it is
    false, else the class's component);
  * ``relabel``: the predicted component under the point is (nearly) all of another true class:
    one click, *relabel* to that class;
  * ``grow`` / ``shrink``: the error is a shell around the predicted class (it covers most of the
    class's outer / inner boundary): *Margin* of the class by the shell's thickness (twice the
    region's largest inscribed radius, in mm);
  * ``seeds``: a large region (at least :data:`LARGE` voxels) that stands out on the image from
    the label around it (contrast at least :data:`CONTRAST` of the sequence's range): *Grow from
    seeds* (only the wrong label may change): on 1-3 axial key slices across the region (one per
    :data:`KEY_MM` of its height) a stroke of the region's true label inside it and one of the
    label it wrongly holds just outside it, then one *Grow* click (:mod:`correction_actions`);
  * ``outline``: a large missed region that does not stand out on the image: outline it on the key
    slices of a scratch layer (a drag around it + a fill click each), *Fill between slices*, and
    *Between layers: union* into the corrected layer;
  * ``redraw`` (policies ``redraw-any``, ``redraw``): an error at the tumour's border (its truth or
    its label is background): *Redraw on a few slices* of the whole tumour, its true outline drawn
    on the slice through the point (``correction_redraw.py``); with ``redraw-any`` before grow from
    seeds, for every such region of at least :data:`REDRAW_MIN` voxels;
  * ``split-core`` (policy ``redraw-any``): a large region of necrosis and enhancing tumour confused
    with each other: *Split the core by enhancement*, scope the component under a click, Otsu's
    T1ce threshold (the button, then a click on the point: two interactions), once;
  * ``confidence`` (when the model's whole-tumour probability is at hand, :data:`CONFIDENCE`): a
    large error at the tumour's border, the first time: *Border by model confidence*, one drag of
    its slider released where the border fits the lesion best (:func:`confidence_release`), once;
  * ``masked``: otherwise one stroke of the intensity-limited 3D brush (radius sized to the region,
    at most ``radius_mm``; window picked from the voxel: FLAIR for edema and background, T1ce for
    the core).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from correction_actions import outline_action, seeds_action
from correction_redraw import redraw_action, region_of
from correction_strokes import CAP_MM, centreline, stroke_inside  # bench/ is on sys.path
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import EditError, components, confidence, enhancement, margins, masks
from napari_brats_seg.core.edit._common import bbox

#: 26-connectivity.
CONN = np.ones((3, 3, 3), dtype=bool)
#: A component is "whole" when the error region covers at least this fraction of it.
WHOLE = 0.9
#: An error region is a shell when it covers at least this fraction of the class's boundary.
SHELL = 0.6
#: Margins only for thin shells: largest inscribed radius at most this (voxels).
THIN = 3.0
#: A region this large (voxels, about 1 ml at 1 mm) is worth a region tool (grow or outline).
LARGE = 1000
#: A region stands out when its median differs from the surrounding label's by this fraction of the
#: sequence's 0.5-99.5 percentile range (the masked brush's half-window).
CONTRAST = 0.1
#: Which tools the simulated user reaches for (``bench_correction.py --policy``):
#:
#: - ``"redraw-any"`` (default): an error at the tumour's border of at least :data:`REDRAW_MIN`
#:   voxels (truth or label background) is redrawn on the slice through its point; other large
#:   regions as in ``"outline"``;
#: - ``"redraw"``: a large region that stands out is grown from seeds, else redrawn;
#: - ``"outline"``: the first round's user: grow from seeds where the region stands out, else
#:   outline + fill between (a missed region) or the masked brush.
POLICY = "redraw-any"
POLICIES = ("redraw-any", "redraw", "outline")
#: Smallest error at the tumour's border a user redraws (voxels) with policy ``redraw-any``.
REDRAW_MIN = 200
#: An action that fixes less than this fraction of its region (net) made no visible progress.
FUTILE = 0.05
#: A region tool (grow from seeds) that made no visible progress this many times on a case is not
#: picked again on it: the reader learns it does not work on this image (:func:`note_futile`).
LEARN = 2
#: The core's classes: a confusion between them is split by enhancement on T1ce (once).
CORE = {lab.NECROTIC, lab.ENHANCING}
#: Whether the user has the *Border by model confidence* slider (``bench_correction.py
#: --no-confidence`` takes it away): it needs the model's whole-tumour probability in ``images``.
CONFIDENCE = True
#: Where the slider can be released: 0.05 to 0.95 in steps of 0.05 (the widget's).
CONFIDENCE_STEPS = tuple(round(0.05 * k, 2) for k in range(1, 20))
#: napari's default brush radius (size 10), in voxels.
BRUSH_RADIUS = 5


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


def largest_error(pred: np.ndarray, gt: np.ndarray, skip: list[np.ndarray] | None = None) -> ErrorRegion | None:
    """The largest false-positive or false-negative 26-connected component of any tumour class.

    Components lying mostly (over half) in a mask of ``skip`` are passed over: regions the user
    gave up on (see :func:`gave_up`).
    """
    best: ErrorRegion | None = None
    for c in lab.TUMOUR_CLASSES:
        for kind, err in (("fp", (pred == c) & (gt != c)), ("fn", (gt == c) & (pred != c))):
            box = bbox(err, 0)
            if box is None:
                continue
            comp, n = ndimage.label(err[box], structure=CONN)
            counts = np.bincount(comp.ravel())[1:]
            for k in np.argsort(-counts):
                if best is not None and counts[k] <= best.size:
                    break
                inner = comp == k + 1
                if skip and any((m[box][inner]).mean() > 0.5 for m in skip):
                    continue
                mask = np.zeros(err.shape, dtype=bool)
                mask[box] = inner
                best = ErrorRegion(kind, int(c), mask, int(counts[k]))
                break
    return best


def wrong_near(err: ErrorRegion, pred: np.ndarray, gt: np.ndarray) -> int:
    """How many voxels of the region's class are wrong in and around the region (its box + 3 voxels)."""
    box = bbox(err.mask, 3)
    return int(((pred[box] == err.cls) != (gt[box] == err.cls)).sum())


def futile(err: ErrorRegion, before: int, pred: np.ndarray, gt: np.ndarray) -> bool:
    """Whether an action on ``err`` made no visible progress: the class's wrong voxels in and around
    the region (``before`` the action, :func:`wrong_near`) fell by less than :data:`FUTILE` of its size."""
    return before - wrong_near(err, pred, gt) < FUTILE * err.size


def note_futile(state: dict | None, tool: str, was_futile: bool) -> None:
    """Count ``tool`` as futile on this case in ``state["futile"]`` when its action was (:func:`futile`)."""
    if state is not None and was_futile:
        counts = state.setdefault("futile", {})
        counts[tool] = counts.get(tool, 0) + 1


def gave_up(err: ErrorRegion, was_futile: bool, tries: list[list], limit: int = 2) -> bool:
    """Whether the user gives up on ``err`` after this action, as a reader who sees the labels there
    not getting better: the action was :func:`futile`, for the ``limit``-th time on this region (or
    one mostly the same). ``tries`` holds ``[mask, count]`` per region."""
    if not was_futile:
        return False
    for entry in tries:
        if (entry[0] & err.mask).sum() > 0.5 * min(int(entry[0].sum()), err.size):
            entry[1] += 1
            return bool(entry[1] >= limit)
    tries.append([err.mask, 1])
    return limit <= 1


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


def sequence_for(classes: set[int]) -> str:
    """The sequence a reader judges these labels on: FLAIR for edema vs background, else T1ce."""
    return "flair" if classes <= {lab.BACKGROUND, lab.EDEMA} else "t1ce"


def region_labels(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion) -> tuple[int, int]:
    """``(true, wrong)``: the label the region should hold (what the image shows) and the one it holds."""
    return _majority(gt[err.mask])[0], _majority(pred[err.mask])[0]


def contrast(image: np.ndarray, region: np.ndarray, around: np.ndarray) -> float:
    """How much the region stands out from the voxels ``around`` it, as a fraction of the image's range."""
    if not region.any() or not around.any():
        return 0.0
    nz = image[image != 0]
    lo, hi = np.percentile(nz, [0.5, 99.5]) if nz.size else (0.0, 1.0)
    return abs(float(np.median(image[region])) - float(np.median(image[around]))) / float(max(hi - lo, 1e-6))


def _rim(mask: np.ndarray, width: int = 3) -> np.ndarray:
    box = bbox(mask, width + 1)
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = ndimage.binary_dilation(mask[box], iterations=width) & ~mask[box]
    return out


def choose(pred: np.ndarray, gt: np.ndarray, err: ErrorRegion, p: tuple[int, int, int], depth: float,
           history: list[tuple[str, int]] | None = None,
           images: dict[str, np.ndarray] | None = None, avoid: frozenset[str] = frozenset()) -> tuple[str, int]:
    """The tool a user picks for error ``err`` at point ``p``, and the class it paints.

    Returns ``(tool, cls)``: tool ``"delete"``, ``"delete-tumour"``, ``"relabel"``, ``"grow"``,
    ``"shrink"``, ``"seeds"``, ``"outline"`` or ``"masked"``. Without ``images`` no region tool
    (seeds, outline) is considered.
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
    if images is not None and CONFIDENCE and "wt_probability" in images and err.size >= LARGE \
            and ("confidence", 0) not in (history or []) and lab.BACKGROUND in region_labels(pred, gt, err):
        return "confidence", 0
    if images is not None and POLICY == "redraw-any" and err.size >= REDRAW_MIN:
        right, wrong = region_labels(pred, gt, err)
        if region_of(err, right, wrong) == ("WT", lab.EDEMA):
            return "redraw", right
        if err.size >= LARGE and {right, wrong} <= CORE and ("split-core", 0) not in (history or []):
            return "split-core", 0
    if images is not None and err.size >= LARGE:
        right, wrong = region_labels(pred, gt, err)
        around = _rim(err.mask) & (gt == wrong)
        c = contrast(images[sequence_for({right, wrong})], err.mask, around)
        if POLICY == "redraw-any" and region_of(err, right, wrong) is not None:
            return "redraw", right
        if c >= CONTRAST and around.any() and "seeds" not in avoid:
            return "seeds", right
        if POLICY != "outline" and region_of(err, right, wrong) is not None:
            return "redraw", right
        if err.kind == "fn" and wrong == lab.BACKGROUND:
            return "outline", right
    return "masked", true


Steps = list[tuple[np.ndarray, str, float]]


def brush_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], err: ErrorRegion,
               radius: float = BRUSH_RADIUS, cap_mm: float = CAP_MM, spacing: tuple[float, float, float] = (1, 1, 1),
               **_: object) -> Steps:
    """One napari brush stroke in slice ``p[0]``: a drag of fixed ``radius`` voxels through ``p``
    along the region (``correction_strokes``), painting the class seen at ``p`` (0 erases)."""
    t0 = time.perf_counter()
    stroke = stroke_inside(err.mask[p[0]], (p[1], p[2]), radius, cap_mm / spacing[1])
    out = pred.copy()
    out[p[0]][stroke] = gt[p]
    return [(out, "brush", time.perf_counter() - t0)]


def tool_step(pred: np.ndarray, gt: np.ndarray, p: tuple[int, int, int], err: ErrorRegion, depth: float,
              images: dict[str, np.ndarray], spacing: tuple[float, float, float], radius_mm: float,
              history: list[tuple[str, int]], stack: np.ndarray | None = None,
              state: dict[str, object] | None = None, **_: object) -> Steps:
    """The plugin tool the user picks (:func:`choose`) applied at ``p``: its interactions.

    ``depth`` is the error region's largest inscribed radius (voxels): margins move the class by it,
    and the intensity-limited brush is sized to it (at least 1.5 voxels, at most ``radius_mm``), as a user
    sizes a brush to the region. ``history`` (the tools used so far, appended to) keeps the user
    from undoing one margin with the opposite one. ``stack`` holds the four sequences
    ``(C, z, y, x)`` for grow from seeds (no region tool without it); ``state`` the user's seeds
    layer between steps.
    """
    futile = (state or {}).get("futile", {})
    avoid = frozenset(t for t, n in futile.items() if n >= LEARN)     # type: ignore[union-attr]
    tool, cls = choose(pred, gt, err, p, depth, history, images if stack is not None else None, avoid)
    history.append((tool, cls))
    if state is not None:                            # another tool: the next grow or outline starts anew
        for other in {"seeds", "outline"} - {tool}:
            state.pop(other, None)
    if tool == "seeds":
        return seeds_action(pred, gt, err, stack, spacing, state)
    if tool == "outline":
        return outline_action(pred, gt, err, spacing, state)
    if tool == "split-core":
        t0 = time.perf_counter()
        try:
            out, _ = enhancement.split_core(pred, images["t1ce"], point=p)
        except EditError:                            # the point is not in the core: nothing split
            out = pred
        return [(pred, "split-core:arm", 0.0), (out, "split-core", time.perf_counter() - t0)]
    if tool == "confidence":
        return [confidence_release(pred, gt, images["wt_probability"])]
    if tool == "redraw":
        steps = redraw_action(pred, gt, err, p, spacing, state if state is not None else {})
        if steps is not None:
            return steps
        history[-1] = ("masked", cls)
        return [masked_stroke(pred, err, p, int(gt[p]), images, depth, spacing, radius_mm)]
    t0 = time.perf_counter()
    step = float(min(spacing))
    if tool == "delete-tumour":
        out = components.delete_component(pred, p, "tumour")
    elif tool == "delete":
        out = components.delete_component(pred, p, "class")
    elif tool == "relabel":
        out = components.relabel_component(pred, p, cls, "class")
    elif tool in ("grow", "shrink"):
        mm = max(float(round(depth)), 1.0) * step
        out = margins.margin(pred, cls, mm if tool == "grow" else -mm, spacing)
    else:
        return [masked_stroke(pred, err, p, cls, images, depth, spacing, radius_mm)]
    return [(out, tool, time.perf_counter() - t0)]


def masked_stroke(pred: np.ndarray, err: ErrorRegion, p: tuple[int, int, int], cls: int,
                  images: dict[str, np.ndarray], depth: float, spacing: tuple[float, float, float],
                  radius_mm: float) -> tuple[np.ndarray, str, float]:
    """One drag of the intensity-limited 3D brush along the region through ``p`` (window picked at ``p``;
    the ball's radius the region's inscribed radius, at least 1.5 voxels, at most ``radius_mm``)."""
    image = images["flair"] if cls in (lab.EDEMA, lab.BACKGROUND) else images["t1ce"]
    radius = min(max(depth, 1.5) * float(min(spacing)), float(radius_mm))
    t0 = time.perf_counter()
    lo, hi = masks.window_at(image, p)
    v = float(image[p])
    window = (min(lo, v), max(hi, v))
    # The drag follows the region while the brush fits in it (the window limits it on the image,
    # not at the region's border): centres at least one radius inside the region's section.
    depth2d = ndimage.distance_transform_edt(np.pad(err.mask[p[0]], 1))[1:-1, 1:-1]
    allowed = depth2d >= radius / spacing[1]
    allowed[p[1], p[2]] = True
    centres = centreline(allowed, (p[1], p[2]), CAP_MM / spacing[1])
    out = pred.copy()
    for y, x in centres[:: max(1, int(radius / spacing[1]))]:
        out[masks.brush_indices(image, (p[0], y, x), radius, window, spacing, axis=None)] = int(cls)
    return out, "masked", time.perf_counter() - t0


def confidence_release(pred: np.ndarray, gt: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, str, float]:
    """One drag of the *Border by model confidence* slider: the reader watches the border move over the
    image and releases where it follows the lesion's border best; the simulated reader judges that by
    the whole tumour's Dice against the ground truth, as the simulated strokes are placed (ties: the
    release nearest the model's own 0.5). The time is the tool's for that release."""
    best, best_key = pred, (region_dice(pred, gt)["WT"], 0.0)
    seconds = 0.0
    for t in CONFIDENCE_STEPS:
        t0 = time.perf_counter()
        out = confidence.border_by_confidence(pred, probability, t)
        dt = time.perf_counter() - t0
        key = (region_dice(out, gt)["WT"], -abs(t - 0.5))
        if key > best_key:
            best, best_key, seconds = out, key, dt
        elif t == 0.5 and best is pred:               # released where it started: that release's time
            seconds = dt
    return best, "confidence", seconds
