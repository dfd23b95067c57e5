"""Grow from seeds: strokes per class and background -> a 3D label map around them (random walker).

The user paints a few strokes of each class and of background (on any slices) into a seeds map:
``1``, ``2``, ``3`` the internal classes, :data:`BACKGROUND_SEED` background, 0 unmarked. Inside the
bounding box of the strokes padded by ``margin_mm``, scikit-image's ``random_walker`` labels every
voxel with the seed it most probably reaches first, with edge weights from all four sequences
(each z-scored inside the box) and the voxel spacing. Voxels outside the brain (all sequences 0)
are left out of the walk and become background. The linear systems are solved by conjugate
gradients with an algebraic-multigrid preconditioner when ``pyamg`` is installed (Jacobi
otherwise), on one BLAS thread. A box of more than ``max_voxels`` voxels (:data:`MAX_VOXELS`) is
walked on a grid coarsened by an integer factor (block means), the probabilities brought back by
linear interpolation and the strokes imposed at full resolution, which bounds the time of a run.

The box of the result replaces the box of the label map; everything outside it is unchanged. With
``editable`` (3D Slicer's *Editable area* masking) only the voxels that now hold one of those labels
may change: ``editable=(0,)`` grows a missed edema into background only, ``editable=(2,)`` carves
background out of an edema that overflows, and neither ever eats the core.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..progress import CancelToken, ProgressCallback, check, report
from ._common import EditError, as_labels, bbox, mm_to_voxels, spacing3

#: Seed value of a background stroke (0 is "not marked").
BACKGROUND_SEED = 5
#: Seed values a seeds map may hold.
SEED_VALUES = (*lab.TUMOUR_CLASSES, BACKGROUND_SEED)
#: Largest random-walker problem (voxels) before the box is coarsened: bounds a grow's time (see
#: the README's measurements: a tumour-sized box coarsened to this walks in a few tenths of a second).
MAX_VOXELS = 32_000


def seed_box(seeds: np.ndarray, margin_mm: float, spacing: Sequence[float]) -> tuple[slice, ...]:
    """The bounding box of the strokes padded by ``margin_mm``, after checking the strokes.

    Raises
    ------
    EditError
        When there are no strokes, strokes of one kind only, or unknown seed values.
    """
    present = [int(v) for v in np.unique(seeds) if v != 0]
    bad = [v for v in present if v not in SEED_VALUES]
    if bad:
        raise EditError(f"seed value(s) {bad} mean nothing: use 1, 2, 3 for the classes, {BACKGROUND_SEED} for background")
    if not present:
        raise EditError("paint seed strokes first: some of a tumour class and some of background")
    if len(present) < 2:
        what = "background" if present[0] == BACKGROUND_SEED else lab.CLASS_NAMES[present[0]]
        raise EditError(f"seeds of {what} only: add strokes of background or of another class")
    box = bbox(seeds != 0, mm_to_voxels(margin_mm, spacing))
    assert box is not None
    return box


def _normalised(images: np.ndarray, brain: np.ndarray, f: int) -> np.ndarray:
    """``(C, z, y, x)`` -> ``(z', y', x', C)`` float32 coarsened by ``f`` (:func:`_coarsen`), each
    channel z-scored with the mean and SD of its brain voxels at full resolution (z-scoring is
    affine, so coarsening first gives the same values for ``f**3`` times less work)."""
    coarse = _coarsen(np.moveaxis(images, 0, -1), f).astype(np.float32, copy=True)
    for c, ch in enumerate(images):
        vals = ch[brain] if brain.any() else ch.ravel()
        mu, sd = float(vals.mean()), float(vals.std())
        coarse[..., c] -= mu
        coarse[..., c] /= sd if sd > 0 else 1.0
    return coarse


def _coarsen(data: np.ndarray, f: int) -> np.ndarray:
    """Block means of ``(z, y, x, C)`` data by an integer factor (edge blocks averaged as they are)."""
    if f == 1:
        return data
    shape = [-(-n // f) for n in data.shape[:3]]
    pad = [(0, s * f - n) for s, n in zip(shape, data.shape[:3])] + [(0, 0)]
    padded = np.pad(data, pad, mode="edge")
    return padded.reshape(shape[0], f, shape[1], f, shape[2], f, -1).mean(axis=(1, 3, 5))


def _walk(data: np.ndarray, seeds: np.ndarray, brain: np.ndarray, spacing: Sequence[float],
          beta: float, f: int) -> np.ndarray:
    """Probabilities ``(K, z, y, x)`` at full resolution of the box, for the sorted seed values
    (``data``: the coarsened, normalised sequences)."""
    from importlib.util import find_spec

    from skimage.segmentation import random_walker
    from threadpoolctl import threadpool_limits

    mode = "cg_mg" if find_spec("pyamg") is not None else "cg_j"     # multigrid: a few times faster
    values = np.unique(seeds[seeds > 0])
    coarse_seeds = np.zeros([-(-n // f) for n in seeds.shape], dtype=np.int32)
    coarse_brain = _coarsen(brain[..., None].astype(np.float32), f)[..., 0] > 0
    coarse_seeds[~coarse_brain] = -1                       # inactive: outside the brain
    idx = np.nonzero(seeds)
    coarse_seeds[tuple(i // f for i in idx)] = np.searchsorted(values, seeds[idx]) + 1
    # The conjugate-gradient steps are dot products of vectors of the box's size: BLAS threads only
    # add synchronisation there (several times slower on a busy machine), so one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        prob = random_walker(data, coarse_seeds, beta=beta, mode=mode, tol=1e-2,
                             channel_axis=-1, spacing=tuple(float(s) * f for s in spacing),
                             return_full_prob=True)
    prob = np.nan_to_num(np.asarray(prob, dtype=np.float32))
    if f == 1:
        return prob
    zoom = [n / c for n, c in zip(seeds.shape, prob.shape[1:])]
    if len(prob) == 2:                          # two labels: one map to bring back, the other is 1 - it
        p1 = ndimage.zoom(prob[1], zoom, order=1, grid_mode=True, mode="nearest")
        return np.stack([1.0 - p1, p1])
    return ndimage.zoom(prob, [1.0, *zoom], order=1, grid_mode=True, mode="nearest")


def grow_region(images: np.ndarray, seeds: np.ndarray, spacing: Sequence[float] | None = None, *,
                margin_mm: float = 10.0, beta: float = 130.0, max_voxels: int | None = MAX_VOXELS,
                on_progress: ProgressCallback | None = None,
                cancel: CancelToken | None = None) -> tuple[tuple[slice, ...], np.ndarray]:
    """The random walker's labels in the strokes' box: ``(box, labels_of_the_box)``.

    Parameters are those of :func:`grow_from_seeds` (without the label map).
    """
    sp = spacing3(spacing)
    seeds = np.asarray(seeds)
    imgs = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if imgs.ndim != 4 or imgs.shape[1:] != seeds.shape:
        raise EditError(f"the sequences {imgs.shape} and the seeds {seeds.shape} do not lie on one grid")
    box = seed_box(seeds, margin_mm, sp)
    report(on_progress, 0, 2, "random walker")
    check(cancel)
    sub = imgs[(slice(None), *box)].astype(np.float32, copy=False)
    brain = (sub != 0).any(axis=0)
    s = seeds[box]
    n = int(np.prod(s.shape))
    f = 1 if max_voxels is None or n <= max_voxels else int(np.ceil((n / max_voxels) ** (1 / 3)))
    data = _normalised(sub, brain, f)
    if not float(np.ptp(data)) > 0.0:              # the walker's edge weights divide by the data's spread
        raise EditError("the sequences are uniform around the strokes: there is no edge to grow along")
    prob = _walk(data, s, brain, sp, beta, f)
    check(cancel)
    values = np.unique(s[s > 0])
    to_class = np.where(values == BACKGROUND_SEED, lab.BACKGROUND, values).astype(np.uint8)
    grown = to_class[np.argmax(prob, axis=0)]
    grown[~brain] = lab.BACKGROUND
    marked = s > 0
    grown[marked] = np.where(s[marked] == BACKGROUND_SEED, lab.BACKGROUND, s[marked])
    report(on_progress, 2, 2, "random walker")
    return box, grown


def paste_grown(labels: np.ndarray, box: tuple[slice, ...], grown: np.ndarray,
                editable: Sequence[int] | None = None) -> np.ndarray:
    """A copy of ``labels`` with the grown box written in: everywhere, or (``editable``) only over
    the voxels that hold one of those labels (0 background, 1-3 the classes)."""
    out = np.array(labels, copy=True)
    if editable is None:
        out[box] = grown
    else:
        sub = out[box]
        out[box] = np.where(np.isin(sub, [int(v) for v in editable]), grown, sub)
    return out


def grow_from_seeds(labels: np.ndarray, images: np.ndarray | Sequence[np.ndarray], seeds: np.ndarray,
                    spacing: Sequence[float] | None = None, *, margin_mm: float = 10.0, beta: float = 130.0,
                    max_voxels: int | None = MAX_VOXELS, editable: Sequence[int] | None = None,
                    on_progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> np.ndarray:
    """The label map with the strokes' neighbourhood relabelled by a random walker.

    Parameters
    ----------
    labels
        Internal-class label map ``(z, y, x)`` (the result replaces its box around the strokes).
    images
        The sequences, ``(C, z, y, x)`` or a list of ``(z, y, x)`` arrays on the label map's grid.
    seeds
        Strokes: 1, 2, 3 the classes, :data:`BACKGROUND_SEED` background, 0 unmarked.
    spacing
        Voxel spacing ``(z, y, x)`` in mm.
    margin_mm
        How far around the strokes' bounding box the walk reaches.
    beta
        Edge-weight sharpness of ``skimage.segmentation.random_walker``.
    max_voxels
        Walk on a coarser grid when the box is larger (None: always at full resolution).
    editable
        Change only the voxels that hold one of these labels (None: every voxel of the box).
    on_progress, cancel
        Progress callback and cancel token.

    Raises
    ------
    EditError
        For missing or one-kind strokes, or images that do not fit the label map.
    """
    labels = as_labels(labels)
    if np.shape(seeds) != labels.shape:
        raise EditError(f"the seeds {np.shape(seeds)} do not lie on the label map's grid {labels.shape}")
    box, grown = grow_region(images, seeds, spacing, margin_mm=margin_mm, beta=beta, max_voxels=max_voxels,
                             on_progress=on_progress, cancel=cancel)
    return paste_grown(labels, box, grown, editable)
