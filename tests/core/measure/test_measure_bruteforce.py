"""The RANO diameters of the 12 real expert label maps against an independent brute-force search.

The brute force here shares nothing with :mod:`napari_brats_seg.core.measure.chords` but the
definition: on the slice the measurement chose, the measured region is rebuilt (the lesion's pixels,
the necrosis inside their convex hull, holes filled, the 8-connected piece of the long axis), the long
axis is the longest segment between two boundary pixels (every pair tried, longest first) whose
Bresenham line (:func:`skimage.draw.line`) stays inside that region, and the perpendicular is the longest such segment
between *any* two region pixels whose direction lies within the tolerance of perpendicular to the
long axis. It runs on the chosen slice only (the whole-volume search over every slice would take
minutes per case), on the two largest enhancing lesions of every case and on the whole tumour of the
two lower-grade cases; that the slice search (which skips slices that cannot win) chose the slice of
largest product is checked by measuring every slice of the largest lesion on its own. Lengths are
compared between pixel centres, within one pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import line
from skimage.morphology import convex_hull_image

from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.io import read_labels
from napari_brats_seg.core.measure import measure_region, measure_slice

_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "brats2018"
CASES = sorted(p.name for p in _DATA.iterdir() if p.is_dir()) if _DATA.is_dir() else ["(../shared missing)"]


def _inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> bool:
    rr, cc = line(int(p[0]), int(p[1]), int(q[0]), int(q[1]))
    return bool(mask[rr, cc].all())


def _brute_long(region: np.ndarray, sp: np.ndarray) -> tuple[float, np.ndarray]:
    """Longest inside segment between boundary pixels (8 x the work of the hull shortcut, no shortcut)."""
    pad = np.pad(region, 1)
    inner = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    pts = np.argwhere(region & ~inner)
    if len(pts) == 1:
        return 0.0, np.zeros(2)
    i, j = np.triu_indices(len(pts), 1)
    v = (pts[j] - pts[i]) * sp
    d = np.hypot(v[:, 0], v[:, 1])
    for k in np.argsort(-d):
        if _inside(region, pts[i[k]], pts[j[k]]):
            return float(d[k]), v[k] / max(d[k], 1e-12)
    raise AssertionError("no inside chord")  # pragma: no cover


def _brute_perp(region: np.ndarray, sp: np.ndarray, u: np.ndarray, tol_deg: float) -> float:
    """Longest inside segment between any two region pixels within tol of perpendicular to u."""
    pts = np.argwhere(region)
    best = 0.0
    for lo in range(0, len(pts), 512):  # all ordered pairs, in blocks (memory)
        a = pts[lo:lo + 512]
        v = (pts[None, :, :] - a[:, None, :]) * sp
        d = np.hypot(v[..., 0], v[..., 1])
        cos = np.abs(v @ u) / np.maximum(d, 1e-12)
        ok = (cos <= np.sin(np.radians(tol_deg)) + 1e-12) & (d > best)
        ia, ib = np.nonzero(ok)
        for k in np.argsort(-d[ia, ib]):
            if _inside(region, a[ia[k]], pts[ib[k]]):
                best = float(d[ia[k], ib[k]])
                break
    return best


def _lesion_slice(mask: np.ndarray, z: int, yx: tuple[int, int], ncr: np.ndarray | None) -> np.ndarray:
    """The measured region: the lesion's pixels on slice z, the necrosis inside their convex hull, holes
    filled; the 8-connected piece holding ``yx``."""
    cc, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    region = cc[z] == cc[z, yx[0], yx[1]]
    if ncr is not None and region.sum() >= 3:
        region = region | (ncr[z] & convex_hull_image(region))
    cc2, _ = ndimage.label(ndimage.binary_fill_holes(region), structure=np.ones((3, 3), bool))
    return cc2 == cc2[yx]


@pytest.mark.parametrize("case", CASES)
def test_diameters_match_brute_force(brats2018_dir: Path, case: str) -> None:
    internal, _, geo = read_labels(brats2018_dir / case / f"{case}_seg.nii.gz")
    sp = np.asarray(geo.spacing[1:])
    pixel = float(sp.max())
    et, ncr = internal == lab.ENHANCING, internal == lab.NECROTIC
    figures = [(measure_region(et, geo.spacing, enclosed=ncr), et, ncr, 2)]
    if "TCIA10" in case:  # the lower-grade cases: their whole-tumour (RANO-LGG style) figure too
        wt = lab.region_masks(internal)["WT"]
        figures.append((measure_region(wt, geo.spacing, region="WT"), wt, None, 1))
    checked = 0
    for fig, mask, enclosed, n in figures:
        for les in fig.lesions[:n]:
            if les.long is None or les.long_mm < 5:
                continue
            region = _lesion_slice(mask, les.slice, les.long.start, enclosed)
            assert region[les.long.end] and region[les.perp.start] and region[les.perp.end]
            long_bf, _ = _brute_long(region, sp)
            assert abs(les.long.centre_mm - long_bf) <= pixel, (case, fig.region, les.id, les.long_mm, long_bf)
            u_eff = les.long.vector_mm(tuple(sp)) / les.long.centre_mm
            perp_bf = _brute_perp(region, sp, u_eff, fig.tolerance_deg)
            assert abs(les.perp.centre_mm - perp_bf) <= pixel, (case, fig.region, les.id, les.perp_mm, perp_bf)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("case", ["Brats18_2013_11_1", "Brats18_TCIA02_606_1"])
def test_chosen_slice_has_the_largest_product(brats2018_dir: Path, case: str) -> None:
    """The slice search skips slices that cannot win; measuring every slice alone finds no larger product."""
    internal, _, geo = read_labels(brats2018_dir / case / f"{case}_seg.nii.gz")
    ncr = internal == lab.NECROTIC
    les = measure_region(internal == lab.ENHANCING, geo.spacing, enclosed=ncr).lesions[0]
    cc, _ = ndimage.label(internal == lab.ENHANCING, structure=np.ones((3, 3, 3), bool))
    lesion = cc == cc[les.slice, les.long.start[0], les.long.start[1]]
    products = {}
    for z in np.flatnonzero(lesion.any(axis=(1, 2))):
        long, perp = measure_slice(lesion[z], geo.spacing[1:], enclosed=ncr[z])
        products[int(z)] = (long.length_mm if long else 0.0) * (perp.length_mm if perp else 0.0)
    assert max(products.values()) == pytest.approx(les.product_mm2)
    assert products[les.slice] == pytest.approx(les.product_mm2)
