"""Split the core by enhancement (core.edit.enhancement): synthetic shapes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import EditError
from napari_brats_seg.core.edit.enhancement import split_core


def _ball(shape, centre, radius):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((x - c) ** 2 for x, c in zip(g, centre)) <= radius ** 2


def _tumour():
    """Edema around a core: a bright enhancing shell (T1ce 300) around a dark necrosis (T1ce 80),
    predicted with the classes mixed up (the shell's lower half necrosis, the centre enhancing)."""
    shape = (30, 40, 40)
    truth = np.zeros(shape, np.uint8)
    truth[_ball(shape, (15, 20, 20), 13)] = lab.EDEMA
    truth[_ball(shape, (15, 20, 20), 8)] = lab.ENHANCING
    truth[_ball(shape, (15, 20, 20), 5)] = lab.NECROTIC
    rng = np.random.default_rng(0)
    t1ce = np.where(truth == lab.ENHANCING, 300.0, np.where(truth == lab.NECROTIC, 80.0, 150.0))
    t1ce = (t1ce + rng.normal(0, 5, shape)).astype(np.float32)
    pred = truth.copy()
    core = np.isin(truth, (lab.NECROTIC, lab.ENHANCING))
    pred[core & (np.arange(shape[0])[:, None, None] >= 15)] = lab.NECROTIC
    pred[truth == lab.NECROTIC] = lab.ENHANCING
    return truth, pred, t1ce


def test_otsu_split_recovers_the_enhancing_shell_and_keeps_the_tumour() -> None:
    truth, pred, t1ce = _tumour()
    out, thr = split_core(pred, t1ce)
    assert 80 < thr < 300
    core = np.isin(truth, (lab.NECROTIC, lab.ENHANCING))
    assert (out != truth).sum() <= 0.002 * core.sum()           # noise tails aside, the truth
    assert np.array_equal(out > 0, pred > 0) and (out[pred == lab.EDEMA] == lab.EDEMA).all()
    assert (pred[truth == lab.NECROTIC] == lab.ENHANCING).all()    # the input is not modified
    hand, used = split_core(pred, t1ce, threshold=1000.0)        # a threshold above everything
    assert used == 1000.0 and (hand[np.isin(pred, (1, 3))] == lab.NECROTIC).all()


def test_split_of_the_component_under_a_point_leaves_other_cores() -> None:
    truth, pred, t1ce = _tumour()
    pred[2:5, 2:5, 2:5] = lab.NECROTIC                 # another core, far away, on bright T1ce
    t1ce[2:5, 2:5, 2:5] = 300.0
    out, _ = split_core(pred, t1ce, point=(15, 20, 20))
    assert (out[2:5, 2:5, 2:5] == lab.NECROTIC).all()
    assert (out[10:, 10:, 10:] != truth[10:, 10:, 10:]).sum() <= 5    # the clicked core split
    whole, _ = split_core(pred, t1ce)
    assert (whole[2:5, 2:5, 2:5] == lab.ENHANCING).all()


def test_split_used_wrongly_is_a_clear_error() -> None:
    truth, pred, t1ce = _tumour()
    with pytest.raises(EditError, match="no tumour core"):
        split_core(np.where(pred > 0, lab.EDEMA, 0).astype(np.uint8), t1ce)
    with pytest.raises(EditError, match="click inside the tumour core"):
        split_core(pred, t1ce, point=(0, 0, 0))
    with pytest.raises(EditError, match="grid"):
        split_core(pred, t1ce[:, :, :10])
    with pytest.raises(EditError, match="uniform"):
        split_core(pred, np.ones_like(t1ce))
