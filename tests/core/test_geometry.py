"""Geometry: every file orientation maps to internal LPS (z, y, x) arrays and back, exactly."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as nio

from napari_brats_seg.core.geometry import Geometry

SHAPE = (5, 6, 7)
ZOOMS = (1.0, 2.0, 3.0)


def _all_orientations() -> list[str]:
    pairs = (("L", "R"), ("P", "A"), ("S", "I"))
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((0, 1), repeat=3):
            out.append("".join(pairs[p][s] for p, s in zip(perm, signs)))
    return out


def _geometry(codes: str, zooms=ZOOMS, shape=SHAPE, rotate_deg: float = 0.0) -> Geometry:
    ornt = nio.axcodes2ornt(tuple(codes))
    aff = np.diag([0.0, 0.0, 0.0, 1.0])
    for src, (dst, flip) in enumerate(ornt):
        aff[int(dst), src] = flip * zooms[src]
    # Axis codes are in RAS world terms: 'R' means +x, so the matrix above already says so.
    aff[:3, 3] = [10.0, -20.0, 30.0]
    if rotate_deg:
        a = np.deg2rad(rotate_deg)
        rot = np.eye(4)
        rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        aff = rot @ aff
    img = nib.Nifti1Image(np.zeros(shape, np.int16), aff)
    return Geometry.from_image(img)


def test_all_48_orientations_cover_the_test() -> None:
    codes = _all_orientations()
    assert len(set(codes)) == 48 and "LPS" in codes and "RAS" in codes
    for c in codes:
        assert "".join(_geometry(c).axcodes) == c


@pytest.mark.parametrize("codes", _all_orientations())
def test_internal_arrays_are_lps_and_invertible(codes: str) -> None:
    geo = _geometry(codes)
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)  # each voxel holds its own file index
    internal = geo.to_internal(data)
    assert internal.shape == geo.internal_shape
    np.testing.assert_array_equal(geo.from_internal(internal), data)
    # internal (z, y, x) axes point S, P, L
    assert nib.aff2axcodes(geo.internal_affine) == ("S", "P", "L")
    # every internal voxel lies where its file voxel lies in the world
    zyx = np.indices(internal.shape).reshape(3, -1)
    file_idx = np.array(np.unravel_index(internal.ravel(), SHAPE))
    world_internal = geo.internal_affine[:3, :3] @ zyx + geo.internal_affine[:3, 3:]
    world_file = geo.affine[:3, :3] @ file_idx + geo.affine[:3, 3:]
    np.testing.assert_allclose(world_internal, world_file, atol=1e-9)
    # spacing follows the axes: S, P, L zooms of the file
    spacing_of = {}
    for src, c in enumerate(codes):
        spacing_of[{"L": "x", "R": "x", "P": "y", "A": "y", "S": "z", "I": "z"}[c]] = ZOOMS[src]
    assert geo.spacing == (spacing_of["z"], spacing_of["y"], spacing_of["x"])


def test_channels_follow_the_spatial_axes() -> None:
    geo = _geometry("RAS")
    data = np.random.default_rng(0).random(SHAPE + (4,))
    internal = geo.to_internal(data)
    assert internal.shape == geo.internal_shape + (4,)
    for c in range(4):
        np.testing.assert_array_equal(internal[..., c], geo.to_internal(data[..., c]))


def test_oblique_is_detected_and_reoriented_to_the_closest_axes() -> None:
    geo = _geometry("RAS", rotate_deg=8.0)
    assert geo.is_oblique and geo.axcodes == ("R", "A", "S")
    assert not _geometry("RAS").is_oblique
    np.testing.assert_allclose(geo.zooms, ZOOMS)
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    np.testing.assert_array_equal(geo.to_internal(data), _geometry("RAS").to_internal(data))
    assert geo.describe()["oblique"] is True


def test_from_internal_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        _geometry("LPS").from_internal(np.zeros((3, 3, 3)))


def test_agrees_with_reports_the_difference() -> None:
    a = _geometry("LPS")
    assert a.agrees_with(_geometry("LPS")) is None
    assert "shape" in a.agrees_with(_geometry("LPS", shape=(5, 6, 8)))
    b = _geometry("LPS")
    b.affine = b.affine.copy()
    b.affine[1, 3] += 0.01
    assert "affine differs by up to 0.01" in a.agrees_with(b)
    b.affine[1, 3] -= 0.0099
    assert a.agrees_with(b) is None  # within the 1e-3 mm tolerance
    assert "affine differs" in a.agrees_with(_geometry("RAS"))


def test_describe_is_json_friendly() -> None:
    import json

    d = _geometry("LPS").describe()
    assert json.loads(json.dumps(d))["orientation"] == "LPS"
    assert d["shape"] == list(SHAPE) and d["spacing_mm"] == list(ZOOMS)
