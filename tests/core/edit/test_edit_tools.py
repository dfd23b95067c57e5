"""Core correction tools on synthetic shapes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_brats_seg.core.edit import EditError
from napari_brats_seg.core.edit.components import delete_component, keep_component, relabel_component
from napari_brats_seg.core.edit.grow import BACKGROUND_SEED, grow_from_seeds
from napari_brats_seg.core.edit.interpolate import fill_between_slices
from napari_brats_seg.core.edit.logic import check_same_grid, combine
from napari_brats_seg.core.edit.margins import margin, smooth
from napari_brats_seg.core.edit.masks import brush_indices, masked_brush, masked_fill, window_at


def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((x - c) * s) ** 2 for x, c, s in zip(g, centre, spacing)) <= radius ** 2


def test_components_keep_delete_relabel() -> None:
    lab = np.zeros((10, 20, 20), np.uint8)
    lab[2:5, 2:6, 2:6] = 2
    lab[3, 3, 3] = 1                 # a core voxel inside the first edema blob
    lab[6:9, 12:18, 12:18] = 2       # a second edema blob
    out = delete_component(lab, (7, 14, 14))
    assert (out[6:9, 12:18, 12:18] == 0).all() and np.array_equal(out[:6], lab[:6])
    kept = keep_component(lab, (7, 14, 14))
    assert (kept[2:5, 2:6, 2:6] != 2).all() and kept[3, 3, 3] == 1 and (kept[6:9, 12:18, 12:18] == 2).all()
    kept_t = keep_component(lab, (7, 14, 14), scope="tumour")
    assert kept_t[3, 3, 3] == 0 and kept_t.sum() == lab[6:9].sum()
    gone = delete_component(lab, (2, 2, 2), scope="tumour")
    assert gone[3, 3, 3] == 0 and (gone[2:5] == 0).all()
    rel = relabel_component(lab, (7, 14, 14), 1)
    assert (rel[6:9, 12:18, 12:18] == 1).all() and rel[2, 2, 2] == 2
    assert np.array_equal(lab[3, 3, 3], 1)            # the input is never modified
    with pytest.raises(EditError, match="no label under the cursor"):
        delete_component(lab, (0, 0, 0))
    with pytest.raises(EditError, match="outside"):
        delete_component(lab, (0, 0, 99))


def test_margin_2mm_on_anisotropic_voxels() -> None:
    lab = np.zeros((9, 21, 21), np.uint8)
    lab[4, 10, 10] = 2
    grown = margin(lab, 2, 2.0, spacing=(3.0, 1.0, 1.0))
    # 2 mm reach two voxels in-plane (a disc of radius 2), none across the 3 mm slices.
    assert np.array_equal(grown[4] == 2, _ball((1, 21, 21), (0, 10, 10), 2.0)[0])
    assert (grown[3] == 0).all() and (grown[5] == 0).all()
    assert (margin(lab, 2, 3.0, spacing=(3.0, 1.0, 1.0))[[3, 5], 10, 10] == 2).all()
    box = np.zeros((9, 21, 21), np.uint8)
    box[2:7, 4:17, 4:17] = 3
    shrunk = margin(box, 3, -2.0, spacing=(3.0, 1.0, 1.0))
    assert np.array_equal(np.argwhere(shrunk == 3).min(0), [2, 6, 6])
    assert np.array_equal(np.argwhere(shrunk == 3).max(0), [6, 14, 14])


def test_margin_of_a_region_takes_the_nearest_class_and_spares_other_classes() -> None:
    lab = np.zeros((5, 20, 20), np.uint8)
    lab[2, 5:10, 5:8] = 1
    lab[2, 5:10, 8:11] = 3
    lab[2, 5:10, 13] = 2            # another class next to the tumour core
    out = margin(lab, "TC", 3.0)
    assert out[2, 7, 3] == 1 and out[2, 7, 12] == 3 and out[2, 7, 13] == 2
    assert margin(lab, "TC", 3.0, overwrite="all")[2, 7, 13] == 3
    with pytest.raises(EditError, match="0 mm"):
        margin(lab, 1, 0)
    with pytest.raises(EditError, match="no"):
        margin(np.zeros_like(lab), 1, 2.0)


def test_smoothing_closes_gaps_opens_specks_median() -> None:
    lab = np.zeros((20, 30, 30), np.uint8)
    lab[_ball(lab.shape, (10, 15, 15), 7)] = 2
    holed = lab.copy()
    holed[:, 15, 15] = 0                          # a one-voxel tunnel through the ball
    closed = smooth(holed, 2, "closing", 2.0) == 2
    ball = lab == 2
    assert closed[5:16, 15, 15].all() and not (ball[5:16] & ~closed[5:16]).any()   # the tunnel is closed
    assert not (closed & ~ndimage.binary_dilation(ball)).any()        # and nothing beyond the surface
    specked = lab.copy()
    specked[1, 1, 1] = 2
    assert np.array_equal(smooth(specked, 2, "opening", 1.5)[1, 1, 1], 0)
    assert smooth(specked, 2, "median", 3.0)[1, 1, 1] == 0
    assert smooth(specked, 2, "median", 3.0)[10, 15, 15] == 2
    with pytest.raises(EditError, match="unknown smoothing"):
        smooth(lab, 2, "gauss", 2.0)


def test_interpolation_between_two_parallel_discs_is_the_cylinder() -> None:
    lab = np.zeros((30, 40, 40), np.uint8)
    disc = _ball((1, 40, 40), (0, 20, 20), 8.0)[0]
    lab[5][disc] = 2
    lab[20][disc] = 2
    out = fill_between_slices(lab, 2, axis=0, spacing=(2.0, 1.0, 1.0))
    for z in range(5, 21):
        assert np.array_equal(out[z] == 2, disc), z
    assert (out[:5] == 0).all() and (out[21:] == 0).all()
    # Different radii give a cone frustum: the middle slice's radius is the mean radius.
    cone = np.zeros_like(lab)
    cone[0][_ball((1, 40, 40), (0, 20, 20), 4.0)[0]] = 1
    cone[10][_ball((1, 40, 40), (0, 20, 20), 12.0)[0]] = 1
    mid = fill_between_slices(cone, 1)[5] == 1
    assert abs(np.sqrt(mid.sum() / np.pi) - 8.0) < 0.6
    # Other classes are not overwritten.
    lab[12, 20, 20] = 3
    assert fill_between_slices(lab, 2)[12, 20, 20] == 3


def test_interpolation_refuses_one_slice_and_no_gap() -> None:
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[4, 3:6, 3:6] = 1
    with pytest.raises(EditError, match="at least two slices"):
        fill_between_slices(lab, 1)
    lab[5, 3:6, 3:6] = 1
    with pytest.raises(EditError, match="no empty slice"):
        fill_between_slices(lab, 1)
    # Sagittal key slices (axis 2) are filled along x.
    sag = np.zeros_like(lab)
    sag[3:6, 3:6, 2] = sag[3:6, 3:6, 7] = 1
    assert (fill_between_slices(sag, 1, axis=2)[3:6, 3:6, 2:8] == 1).all()


def _sphere_images(shape, centre, radius, seed=0):
    rng = np.random.default_rng(seed)
    sphere = _ball(shape, centre, radius)
    imgs = np.stack([100 + 50 * sphere + rng.normal(0, 3, shape) for _ in range(4)]).astype(np.float32)
    return imgs, sphere


@pytest.mark.parametrize(("max_voxels", "tol"), [(None, 1), (30_000, 2)])
def test_sphere_grown_from_one_seed_stays_within_one_voxel(max_voxels, tol) -> None:
    """At full resolution within one voxel; walked on a 2x coarser grid, within two."""
    shape, c, r = (40, 40, 40), (20, 20, 20), 9.0
    imgs, sphere = _sphere_images(shape, c, r)
    seeds = np.zeros(shape, np.uint8)
    seeds[c] = 3
    seeds[20, 20, 4] = BACKGROUND_SEED               # one background stroke point outside
    seeds[4, 20, 20] = BACKGROUND_SEED
    out = grow_from_seeds(np.zeros(shape, np.uint8), imgs, seeds, margin_mm=15, max_voxels=max_voxels)
    grown = out == 3
    assert grown[c]
    assert not (grown & ~ndimage.binary_dilation(sphere, iterations=tol)).any()    # never beyond tol outside
    assert not (ndimage.binary_erosion(sphere, iterations=tol) & ~grown).any()     # never more than tol short


def test_grow_refuses_missing_and_one_kind_seeds() -> None:
    shape = (20, 20, 20)
    imgs, _ = _sphere_images(shape, (10, 10, 10), 5)
    labels = np.zeros(shape, np.uint8)
    seeds = np.zeros(shape, np.uint8)
    with pytest.raises(EditError, match="paint seed strokes"):
        grow_from_seeds(labels, imgs, seeds)
    seeds[10, 10, 10] = 2
    seeds[10, 10, 11] = 2
    with pytest.raises(EditError, match="edema only"):
        grow_from_seeds(labels, imgs, seeds)
    with pytest.raises(EditError, match="one grid"):
        grow_from_seeds(labels, imgs[:, :10], seeds)


def test_masked_brush_and_fill_change_only_voxels_in_the_window() -> None:
    img = np.zeros((5, 30, 30), np.float32)
    img[:, :, :15] = 100.0                # left half bright, right half dark (10)
    img[:, :, 15:] = 10.0
    lab = np.zeros(img.shape, np.uint8)
    win = window_at(img, (2, 15, 10), fraction=0.1)
    assert win[0] < 100 < win[1] and win[0] > 10
    out = masked_brush(lab, img, (2, 15, 14), 5.0, 3, win, axis=0)
    assert (out[2][:, :15] == 3).sum() > 30 and not (out[2][:, 15:] == 3).any()
    assert (out[[0, 1, 3, 4]] == 0).all()
    idx = brush_indices(img, (2, 15, 14), 5.0, win, axis=None)
    assert set(np.unique(idx[0])) == {0, 1, 2, 3, 4}
    filled = masked_fill(lab, img, (2, 3, 3), 2, win, axis=0)
    assert (filled[2][:, :15] == 2).all() and (filled[2][:, 15:] == 0).all() and (filled[1] == 0).all()
    assert (masked_fill(lab, img, (2, 3, 3), 2, win, axis=None)[:, :, :15] == 2).all()
    with pytest.raises(EditError, match="outside the intensity window"):
        masked_fill(lab, img, (2, 3, 20), 2, win)


def test_logical_operations_between_maps() -> None:
    a = np.zeros((3, 6, 6), np.uint8)
    b = np.zeros_like(a)
    a[1, 1:3, 1:3] = 2
    a[1, 4, 4] = 1
    b[1, 2:4, 2:4] = 3
    b[1, 0, 0] = 2
    assert combine(a, b, "copy", 3)[1, 2, 2] == 3 and combine(a, b, "copy", 3)[1, 0, 0] == 0
    u = combine(a, b, "union")
    assert u[1, 2, 2] == 2 and u[1, 3, 3] == 3 and u[1, 0, 0] == 2
    s = combine(a, b, "subtract")
    assert s[1, 2, 2] == 0 and s[1, 1, 1] == 2 and s[1, 4, 4] == 1
    i = combine(a, b, "intersect")
    assert i[1, 2, 2] == 2 and i[1, 1, 1] == 0 and i[1, 4, 4] == 0
    assert combine(a, b, "subtract", 3).sum() == a.sum()     # a holds no ET: nothing to subtract
    with pytest.raises(EditError, match="different grids"):
        combine(a, b[:, :5], "union")
    with pytest.raises(EditError, match="different cases"):
        check_same_grid(a.shape, a.shape, target_case="A", source_case="B")
    with pytest.raises(EditError, match="affines differ"):
        check_same_grid(a.shape, a.shape, np.eye(4), np.diag([2, 1, 1, 1]))
