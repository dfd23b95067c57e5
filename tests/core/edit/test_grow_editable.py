"""Grow from seeds with an editable area (3D Slicer's masking): only voxels of the chosen labels change."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brats_seg.core.edit.grow import BACKGROUND_SEED, grow_from_seeds, paste_grown


def _ball(shape, centre, radius):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((x - c) ** 2 for x, c in zip(g, centre)) <= radius ** 2


def _case():
    """A bright sphere (the lesion) with a predicted core of 4 voxels and no edema at all."""
    shape, c = (32, 32, 32), (16, 16, 16)
    rng = np.random.default_rng(0)
    lesion = _ball(shape, c, 9)
    imgs = np.stack([100 + 50 * lesion + rng.normal(0, 3, shape) for _ in range(4)]).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    labels[_ball(shape, c, 4)] = 1
    seeds = np.zeros(shape, np.uint8)
    seeds[16, 16, 8:11] = 2                            # an edema stroke next to the core, inside the lesion
    seeds[16, 16, 1:4] = BACKGROUND_SEED               # a background stroke outside it
    seeds[16, 1:4, 16] = BACKGROUND_SEED
    return imgs, labels, seeds, lesion


def test_grow_into_background_only_keeps_the_core() -> None:
    imgs, labels, seeds, lesion = _case()
    free = grow_from_seeds(labels, imgs, seeds, margin_mm=12)
    only_bg = grow_from_seeds(labels, imgs, seeds, margin_mm=12, editable=(0,))
    core = labels == 1
    assert (free[core] != 1).any()                     # without masking the edema strokes eat the core
    assert (only_bg[core] == 1).all()                  # with "only background" the core is kept
    grown = only_bg == 2
    assert grown.sum() > 0.6 * (lesion & ~core).sum() and not (grown & ~lesion).any()


def test_paste_grown_writes_only_over_editable_labels() -> None:
    labels = np.array([[[0, 1, 2, 3]]], np.uint8)
    grown = np.full_like(labels, 2)
    box = (slice(None),) * 3
    assert paste_grown(labels, box, grown).tolist() == [[[2, 2, 2, 2]]]
    assert paste_grown(labels, box, grown, editable=(0, 3)).tolist() == [[[2, 1, 2, 2]]]
    assert labels.tolist() == [[[0, 1, 2, 3]]]         # the input is never modified


def test_uniform_sequences_are_a_clear_error_not_a_walker_failure() -> None:
    from napari_brats_seg.core.edit import EditError, grow

    labels = np.zeros((12, 16, 16), np.uint8)
    seeds = np.zeros_like(labels)
    seeds[6, 4:6, 4:6] = 2
    seeds[6, 10:12, 10:12] = grow.BACKGROUND_SEED
    flat = np.ones((4, *labels.shape), np.float32)
    with pytest.raises(EditError, match="uniform"):
        grow.grow_from_seeds(labels, flat, seeds, (1.0, 1.0, 1.0))
