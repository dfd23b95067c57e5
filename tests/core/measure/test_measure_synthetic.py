"""RANO measurement of synthetic lesions of known size, and the measurability rules at their edges."""

from __future__ import annotations

import numpy as np
import pytest

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.errors import CaseError
from napari_brats_seg.core.measure import measure_labels, measure_region

GRIDS = {"1x1x1": (1.0, 1.0, 1.0), "0.9x0.9x5": (5.0, 0.9, 0.9)}  # (z, y, x) spacing in mm


def _plane_mm(shape_yx: tuple[int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (mm) relative to a centre placed off the grid (no lucky alignment)."""
    ny, nx = shape_yx
    y = (np.arange(ny) - ny / 2 + 0.3) * spacing[1]
    x = (np.arange(nx) - nx / 2 - 0.2) * spacing[2]
    return np.meshgrid(y, x, indexing="ij")


def _ellipse(spacing, a_mm: float, b_mm: float, angle_deg: float = 0.0, height_mm: float = 15.0) -> np.ndarray:
    """A boolean (z, y, x) cylinder of elliptical section: semi-axes a (along angle) and b."""
    yy, xx = _plane_mm((96, 96), spacing)
    t = np.radians(angle_deg)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    section = (u / a_mm) ** 2 + (v / b_mm) ** 2 <= 1.0
    nz = int(round(height_mm / spacing[0]))
    vol = np.zeros((nz + 4, 96, 96), bool)
    vol[2:2 + nz] = section
    return vol


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize(("name", "a", "b", "angle"), [
    ("disc", 15.0, 15.0, 0.0), ("ellipse", 20.0, 10.0, 0.0), ("ellipse rotated 30 deg", 20.0, 10.0, 30.0),
])
def test_known_sizes_within_one_voxel(grid: str, name: str, a: float, b: float, angle: float) -> None:
    sp = GRIDS[grid]
    res = measure_region(_ellipse(sp, a, b, angle), sp)
    assert len(res.lesions) == 1, name
    les = res.lesions[0]
    pixel = max(sp[1], sp[2])
    assert abs(les.long_mm - 2 * a) <= pixel, (name, les.long_mm)
    assert abs(les.perp_mm - 2 * b) <= pixel, (name, les.perp_mm)
    assert les.measurable and les.target and res.spd_mm2 == pytest.approx(les.product_mm2)
    if a != b:  # the long axis follows the ellipse's major axis, the second one is perpendicular to it
        la, pa = les.long.angle_deg(sp[1:]), les.perp.angle_deg(sp[1:])
        # (a 2:1 ellipse's flat ends leave its long axis a few degrees of play on a pixel grid)
        assert min(abs(la - angle), 180 - abs(la - angle)) <= 8.0
        d = abs(la - pa) % 180
        assert abs(d - 90) <= res.tolerance_deg + 1e-9


@pytest.mark.parametrize("grid", list(GRIDS))
def test_ring_is_measured_across_its_necrotic_centre(grid: str) -> None:
    sp = GRIDS[grid]
    outer = _ellipse(sp, 15.0, 15.0)
    inner = _ellipse(sp, 8.0, 8.0)
    labels = np.where(inner, lab.NECROTIC, np.where(outer, lab.ENHANCING, 0)).astype(np.uint8)
    res = measure_labels(labels, sp)
    les = res.et.lesions[0]
    pixel = max(sp[1], sp[2])
    # The chords run across the enhancing rim through the necrosis: the outer diameter, not the rim.
    assert abs(les.long_mm - 30.0) <= pixel and abs(les.perp_mm - 30.0) <= pixel
    z = les.slice
    for chord in (les.long, les.perp):
        mid = np.round((np.add(chord.start, chord.end)) / 2).astype(int)
        assert labels[z, mid[0], mid[1]] == lab.NECROTIC  # both pass through the necrotic centre
    # ... while the volume of ET is the rim only.
    assert res.volumes_ml["ET"] == pytest.approx(np.count_nonzero(labels == 3) * np.prod(sp) / 1000)
    assert res.volumes_ml["TC"] == pytest.approx(np.count_nonzero(outer) * np.prod(sp) / 1000)


def _square(diag_mm: float, n_slices: int, dz: float) -> tuple[np.ndarray, tuple[float, float, float]]:
    """An 11 x 11 pixel square whose two diagonals (both diameters, exactly perpendicular) measure
    ``diag_mm``: 10 sqrt(2) pixels between the corner pixels' centres plus one pixel."""
    s = diag_mm / (10 * np.sqrt(2) + 1)
    vol = np.zeros((n_slices + 2, 15, 15), bool)
    vol[1:1 + n_slices, 2:13, 2:13] = True
    return vol, (dz, s, s)


@pytest.mark.parametrize(("diam", "n_slices", "dz", "measurable"), [
    (9.9, 2, 1.0, False), (10.1, 2, 1.0, True),     # 10 mm rule
    (10.1, 1, 1.0, False), (10.1, 2, 5.0, True),    # two slices; 5 mm slices are not "thicker than 5 mm"
    (11.9, 2, 6.0, False), (12.1, 2, 6.0, True),    # 6 mm slices: both diameters >= 2 x 6 mm
])
def test_measurability_at_the_edges(diam: float, n_slices: int, dz: float, measurable: bool) -> None:
    vol, sp = _square(diam, n_slices, dz)
    res = measure_region(vol, sp)
    les = res.lesions[0]
    assert les.long_mm == pytest.approx(diam) and les.perp_mm == pytest.approx(diam)
    assert les.n_slices == n_slices
    assert les.measurable is measurable, les.reason
    assert (res.spd_mm2 is None) is (not measurable)
    if not measurable:
        assert "not measurable" in les.reason and "no measurable" in res.status


def test_at_most_five_targets_the_largest() -> None:
    vol = np.zeros((6, 40, 240), bool)
    sizes = [12, 13, 14, 15, 16, 17, 18]  # seven square lesions of growing size
    x = 2
    for s in sizes:
        vol[1:4, 2:2 + s, x:x + s] = True
        x += s + 3
    res = measure_region(vol, (1.0, 1.0, 1.0))
    assert len(res.lesions) == 7 and len(res.targets) == 5
    assert [les.id for les in res.targets] == [1, 2, 3, 4, 5]
    assert all(les.measurable for les in res.lesions)
    smallest_target = min(les.product_mm2 for les in res.targets)
    assert all(les.product_mm2 <= smallest_target for les in res.lesions if not les.target)
    assert res.spd_mm2 == pytest.approx(sum(les.product_mm2 for les in res.targets))


def test_no_enhancing_tumour_is_said_and_whole_tumour_measured() -> None:
    sp = GRIDS["1x1x1"]
    labels = np.where(_ellipse(sp, 20.0, 12.0), lab.EDEMA, 0).astype(np.uint8)
    res = measure_labels(labels, sp)
    d = res.to_dict()
    assert d["lesions"] == [] and d["spd_mm2"] is None
    assert "no enhancing tumour" in d["status"] and any("no enhancing tumour" in n for n in d["notes"])
    wt = d["whole_tumour"]
    assert "RANO-LGG" in wt["label"] and wt["spd_mm2"] is not None
    assert abs(wt["lesions"][0]["long_mm"] - 40) <= 1 and abs(wt["lesions"][0]["perp_mm"] - 24) <= 1
    assert d["volumes_ml"]["ET"] == 0 and d["volumes_ml"]["WT"] > 0


def test_empty_and_foreign_values_are_refused() -> None:
    with pytest.raises(CaseError, match="empty"):
        measure_labels(np.zeros((4, 8, 8), np.uint8), (1, 1, 1))
    with pytest.raises(CaseError, match="no internal class"):
        measure_labels(np.full((4, 8, 8), 7, np.uint8), (1, 1, 1))
