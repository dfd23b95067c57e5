"""Redraw a region on a few slices (core.edit.redraw): synthetic shapes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.edit import EditError
from napari_brats_seg.core.edit.redraw import outlined_extent, redraw


def _disc(shape, centre, radius, spacing=(1.0, 1.0)):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) * spacing[0]) ** 2 + ((xx - centre[1]) * spacing[1]) ** 2 <= radius ** 2


def _ring(shape, centre, radius, spacing=(1.0, 1.0)):
    """A drawn closed contour: the disc's one-pixel border, as one drag of a small brush leaves."""
    d = _disc(shape, centre, radius, spacing)
    return d & ~ndimage.binary_erosion(d)


def test_two_drawn_contours_redraw_the_cylinder_between_them_only() -> None:
    labels = np.zeros((30, 40, 40), np.uint8)
    outlines = np.zeros_like(labels)
    disc = _disc((40, 40), (20, 20), 8.0)
    outlines[5][_ring((40, 40), (20, 20), 8.0)] = 1     # contours, not filled: the tool fills them
    outlines[20][_ring((40, 40), (20, 20), 8.0)] = 1
    labels[25, 18:22, 18:22] = lab.EDEMA                 # outside the outlined slices: left alone
    out = redraw(labels, outlines, "WT", spacing=(2.0, 1.0, 1.0))
    for z in range(5, 21):
        assert np.array_equal(out[z] == lab.EDEMA, disc), z
    assert (out[:5] == 0).all() and np.array_equal(out[21:], labels[21:])
    assert labels.max() == lab.EDEMA and (labels[:25] == 0).all()   # the input is not modified


def test_redraw_of_the_whole_tumour_removes_the_overflow_and_keeps_the_core_inside() -> None:
    labels = np.zeros((20, 40, 40), np.uint8)
    labels[2:18][:, _disc((40, 40), (20, 20), 15.0)] = lab.EDEMA     # an overflowing edema
    labels[8:12][:, _disc((40, 40), (20, 20), 4.0)] = lab.ENHANCING  # a core inside it
    labels[8:12][:, _disc((40, 40), (5, 20), 3.0)] = lab.NECROTIC    # a core outside the outline
    outlines = np.zeros_like(labels)
    outlines[4][_disc((40, 40), (20, 20), 9.0)] = 2                  # filled shapes work as well
    outlines[15][_disc((40, 40), (20, 20), 9.0)] = 2
    out = redraw(labels, outlines, "WT")
    keep = _disc((40, 40), (20, 20), 9.0)
    for z in range(4, 16):
        assert np.array_equal(out[z] > 0, keep), z
    assert (out[8:12][:, _disc((40, 40), (20, 20), 4.0)] == lab.ENHANCING).all()
    assert (out[8:12][:, _disc((40, 40), (5, 20), 3.0)] == 0).all()
    assert np.array_equal(out[:4], labels[:4]) and np.array_equal(out[16:], labels[16:])


def test_redraw_of_the_core_takes_edema_in_and_gives_edema_back() -> None:
    labels = np.zeros((12, 30, 30), np.uint8)
    labels[:] = lab.EDEMA
    labels[:, 2:8, 2:8] = lab.NECROTIC                   # a core in the wrong place
    outlines = np.zeros_like(labels)
    outlines[2][_disc((30, 30), (18, 18), 5.0)] = 1
    outlines[9][_disc((30, 30), (18, 18), 5.0)] = 1
    out = redraw(labels, outlines, "TC")
    assert (out[2:10][:, _disc((30, 30), (18, 18), 5.0)] == lab.NECROTIC).all()
    assert (out[2:10, 2:8, 2:8] == lab.EDEMA).all()      # the core left: edema, still tumour
    assert (out[:2, 2:8, 2:8] == lab.NECROTIC).all()
    out = redraw(labels, outlines, "TC", fill=lab.ENHANCING)
    assert (out[5][_disc((30, 30), (18, 18), 5.0)] == lab.ENHANCING).all()


def test_one_outlined_slice_redraws_that_slice_and_sagittal_outlines_work() -> None:
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[:, 5:15, 5:15] = lab.EDEMA
    outlines = np.zeros_like(labels)
    outlines[4, 8:12, 8:12] = 1
    out = redraw(labels, outlines)
    assert (out[4] > 0).sum() == 16 and np.array_equal(out[3], labels[3]) and np.array_equal(out[5], labels[5])
    sag = np.zeros_like(labels)
    sag[2:8, 6:10, 6] = sag[2:8, 6:10, 12] = 1
    extent, first, last = outlined_extent(sag, axis=2)
    assert (first, last) == (6, 12) and extent[2:8, 6:10, 6:13].all() and extent.sum() == 6 * 4 * 7


def test_anisotropic_spacing_interpolates_in_mm() -> None:
    """Key discs of radius 4 and 12 mm on 0.5 x 2 mm pixels: the middle slice has radius 8 mm."""
    outlines = np.zeros((11, 60, 20), np.uint8)
    outlines[0][_disc((60, 20), (30, 10), 4.0, (0.5, 2.0))] = 1
    outlines[10][_disc((60, 20), (30, 10), 12.0, (0.5, 2.0))] = 1
    extent, _, _ = outlined_extent(outlines, spacing=(1.0, 0.5, 2.0))
    mid = _disc((60, 20), (30, 10), 8.0, (0.5, 2.0))
    assert (extent[5] ^ mid).sum() <= 0.1 * mid.sum()


def test_redraw_used_wrongly_is_a_clear_error() -> None:
    labels = np.zeros((5, 8, 8), np.uint8)
    with pytest.raises(EditError, match="outline on at least one slice"):
        redraw(labels, np.zeros_like(labels))
    with pytest.raises(EditError, match="shape"):
        redraw(labels, np.zeros((5, 8, 9), np.uint8))
    drawn = np.zeros_like(labels)
    drawn[2, 2:5, 2:5] = 1
    with pytest.raises(EditError, match="must get one of its classes"):
        redraw(labels, drawn, "TC", fill=lab.EDEMA)
    with pytest.raises(EditError, match="cannot stay in it"):
        redraw(labels, drawn, "WT", outside=lab.EDEMA)
    with pytest.raises(EditError, match="unknown region"):
        redraw(labels, drawn, "XX")
