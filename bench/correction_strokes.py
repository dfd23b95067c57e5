"""Strokes of the simulated user of ``bench_correction.py``: what one drag of a brush covers.

**One stroke = one interaction = one drag in one slice.** A radiologist paints by dragging, not by
dabbing: one press-drag-release of napari's brush covers a band, a disc of the brush radius swept
along a line. The simulated stroke is that band, in the axial slice of the point, along a straight
line through the point in the direction the region is longest in that slice (its principal axis),
as far as the brush centre stays inside the region (the user does not paint past the border on
purpose), and at most ``cap_mm`` long (a stroke is a short drag, not a tracing of the whole
region). The same definition is used by both arms: napari's brush (``brush_step``), the
intensity-limited brush and the seed strokes of grow from seeds; only the radius differs (the napari
brush keeps its fixed size, as the benchmark's protocol says; seed strokes are sized to fit the
region so they mark only what the user means).

A stroke *just outside* a region (the background or neighbouring-class strokes of grow from seeds)
is a band following the region's border a few voxels outside it, on the voxels of the other label,
as long as ``cap_mm`` around the point of the border nearest the region's centre.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Longest drag of one stroke (mm).
CAP_MM = 40.0


def principal_axis(mask2d: np.ndarray) -> np.ndarray:
    """The unit direction (dy, dx) along which a 2D mask is longest (first principal component)."""
    pts = np.argwhere(mask2d).astype(float)
    if len(pts) < 2:
        return np.array([0.0, 1.0])
    cov = np.cov((pts - pts.mean(0)).T)
    w, v = np.linalg.eigh(cov)
    return v[:, int(np.argmax(w))]


def deepest(mask2d: np.ndarray) -> tuple[tuple[int, int], float]:
    """The pixel of a 2D mask farthest from its border and that distance (pixels)."""
    d = ndimage.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    k = np.unravel_index(int(np.argmax(d)), d.shape)
    return (int(k[0]), int(k[1])), float(d[k])


def centreline(allowed: np.ndarray, anchor: tuple[int, int], cap_px: float) -> np.ndarray:
    """The brush centres of one drag: the run of the principal-axis line through ``anchor`` inside
    ``allowed`` (contiguous, through the anchor), at most ``cap_px`` long. ``(n, 2)`` pixel indices."""
    direction = principal_axis(allowed)
    half = int(np.ceil(cap_px / 2))
    pts = []
    for sign in (1, -1):
        run = []
        for t in np.arange(0 if sign == 1 else 0.5, half + 0.5, 0.5):
            q = np.rint(np.asarray(anchor) + sign * t * direction).astype(int)
            if not (0 <= q[0] < allowed.shape[0] and 0 <= q[1] < allowed.shape[1]) or not allowed[q[0], q[1]]:
                break
            run.append(tuple(q))
        pts += run
    if not pts:
        pts = [tuple(anchor)]
    return np.unique(np.array(pts, dtype=int), axis=0)


def band(shape: tuple[int, int], centres: np.ndarray, radius: float) -> np.ndarray:
    """The pixels within ``radius`` of any centre: what the brush sweeps."""
    line = np.ones(shape, dtype=bool)
    line[centres[:, 0], centres[:, 1]] = False
    r = int(np.ceil(radius)) + 1
    lo, hi = np.maximum(centres.min(0) - r, 0), np.minimum(centres.max(0) + r + 1, shape)
    out = np.zeros(shape, dtype=bool)
    sub = ndimage.distance_transform_edt(line[lo[0]:hi[0], lo[1]:hi[1]])
    out[lo[0]:hi[0], lo[1]:hi[1]] = sub <= radius
    return out


def stroke_inside(region2d: np.ndarray, anchor: tuple[int, int], radius: float, cap_px: float,
                  fit: bool = False) -> np.ndarray:
    """One drag through ``anchor`` along the region's principal axis, centres kept inside the region.

    With ``fit`` the centres stay at least ``radius`` from the border, so the band stays inside the
    region (a seed stroke marks only the region); else the band may overhang by its radius (a brush
    stroke's centre follows the region, its edge does not).
    """
    allowed = region2d
    if fit:
        depth = ndimage.distance_transform_edt(np.pad(region2d, 1))[1:-1, 1:-1]
        allowed = depth > radius
        if not allowed[anchor]:
            allowed = allowed.copy()
            allowed[anchor] = True
    return band(region2d.shape, centreline(allowed, anchor, cap_px), radius)


def stroke_outside(region2d: np.ndarray, other2d: np.ndarray, radius: float, cap_px: float,
                   gap: float = 2.0) -> np.ndarray:
    """One drag just outside the region: the band ``gap`` to ``gap + 2 radius`` pixels outside its
    border, on ``other2d`` (the label the user paints there), within ``cap_px / 2`` of the band pixel
    nearest the region's deepest pixel. Empty when the other label lies nowhere around the region."""
    out_d = ndimage.distance_transform_edt(~region2d)
    ring = (out_d > gap) & (out_d <= gap + 2 * radius) & other2d
    if not ring.any():
        return ring
    (ay, ax), _ = deepest(region2d)
    pts = np.argwhere(ring)
    near = pts[int(np.argmin(((pts - (ay, ax)) ** 2).sum(1)))]
    yy, xx = np.ogrid[: ring.shape[0], : ring.shape[1]]
    return ring & ((yy - near[0]) ** 2 + (xx - near[1]) ** 2 <= (cap_px / 2) ** 2)
