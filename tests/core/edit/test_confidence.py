"""Border by model confidence (core.edit.confidence): a radial probability with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import EditError
from napari_brats_seg.core.edit.confidence import as_probability, border_by_confidence, quantise


def _radial(shape=(30, 40, 40), centre=(15, 20, 20), half=10.0):
    """A probability falling with the distance r from ``centre``: 0.5 at r = ``half``, 0.9 at about 6.
    Returns it and r."""
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    r = np.sqrt(sum((x - c) ** 2 for x, c in zip(g, centre)))
    return (1.0 / (1.0 + np.exp((r - half) / 2.0))).astype(np.float32), r


def _labels(r, core_radius=4.0, wt_radius=10.0):
    out = np.zeros(r.shape, np.uint8)
    out[r <= wt_radius] = lab.EDEMA
    out[r <= core_radius] = lab.ENHANCING
    return out


def test_the_border_moves_to_the_iso_probability_surface_and_the_core_stays() -> None:
    p, r = _radial()
    labels = _labels(r)
    tight = border_by_confidence(labels, p, 0.9)          # 0.9 lies at r = 10 - 2 ln 9 = 5.6
    assert ((tight > 0) == (r <= 10 - 2 * np.log(9))).all()
    assert (tight[labels == lab.ENHANCING] == lab.ENHANCING).all()
    wide = border_by_confidence(labels, p, 0.1)           # 0.1 lies at r = 14.4
    assert ((wide > 0) == (r <= 10 + 2 * np.log(9))).all()
    assert (wide[(r > 10) & (r <= 14)] == lab.EDEMA).all()
    assert (labels[r > 10] == 0).all()                    # the input is not modified


def test_the_core_is_kept_where_the_model_doubts_it_and_8_bit_storage_agrees() -> None:
    p, r = _radial()
    labels = _labels(r, core_radius=8.0)
    out = border_by_confidence(labels, p, 0.95)           # 0.95 lies at r = 4.1: inside the core
    assert ((out > 0) == (r <= 8.0)).all() and (out[r <= 8] == lab.ENHANCING).all()
    q = border_by_confidence(labels, quantise(p), 0.3)
    assert (q != border_by_confidence(labels, p, 0.3)).sum() <= 0.01 * (r <= 12).sum()


def test_components_away_from_the_tumour_do_not_come_back() -> None:
    p, r = _radial()
    p[2:6, 2:6, 2:6] = 0.99                               # a blob the reader deleted
    labels = _labels(r)
    out = border_by_confidence(labels, p, 0.3)
    assert (out[2:6, 2:6, 2:6] == 0).all()
    labels[3, 3, 3] = lab.EDEMA                           # kept where a voxel of it remains
    assert (border_by_confidence(labels, p, 0.3)[2:6, 2:6, 2:6] == lab.EDEMA).all()


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_a_threshold_outside_0_1_is_refused(threshold: float) -> None:
    p, r = _radial()
    with pytest.raises(EditError, match="between 0 and 1"):
        border_by_confidence(_labels(r), p, threshold)


def test_wrong_uses_are_clear_errors() -> None:
    p, r = _radial()
    with pytest.raises(EditError, match="grid"):
        border_by_confidence(_labels(r), p[:-1], 0.5)
    with pytest.raises(EditError, match="no tumour"):
        border_by_confidence(np.zeros(r.shape, np.uint8), p, 0.5)
    with pytest.raises(EditError, match=r"\[0, 1\]"):
        border_by_confidence(_labels(r), p * 3, 0.5)
    with pytest.raises(EditError, match="floats"):
        as_probability(np.ones(r.shape, np.int32))
