"""Chords of one 2D region: its longest inside diameter and the longest diameter perpendicular to it.

Definitions (what :mod:`.rano` measures on a slice)
---------------------------------------------------
- Pixels are points at their centres; a pixel ``(row, col)`` lies at ``(row * sy, col * sx)`` mm. The
  search maximises distances between centres; a chord's reported length adds one pixel (edge to edge,
  see :class:`Chord`): a lesion 10 pixels of 1 mm across measures 10 mm, not 9.
- A **chord** joins the centres of two pixels of the region and lies **inside** it: every pixel of its
  digital line belongs to the region. The digital line takes one sample per pixel along the segment's
  major axis (a DDA line: ``max(|drow|, |dcol|) + 1`` samples) and the pixel nearest to each sample.
- The **long axis** is the longest chord between two boundary pixels (region pixels with a
  4-neighbour outside). It is found from the convex hull first: the longest pair of hull vertices is
  the longest any chord can be, so when it lies inside it is the answer; otherwise every boundary pair
  longer than the best inside hull pair is tried, longest first.
- The **perpendicular** is the longest chord between two boundary pixels whose direction is within
  ``tolerance_deg`` of the normal of the long axis (a pixel grid offers only some directions). It need
  not cross the long axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

#: Default angular tolerance of the perpendicular diameter (degrees either side of 90).
PERP_TOLERANCE_DEG = 5.0
_CROSS = ndimage.generate_binary_structure(2, 1)
_BATCH = 4096
_COARSE = 9  # samples of the first, coarse inside test


@dataclass(frozen=True)
class Chord:
    """A diameter on a slice: between the centres of two pixels, reported from edge to edge.

    Attributes
    ----------
    start, end
        ``(row, col)`` indices of the two end pixels (the search works on pixel centres).
    length_mm
        Edge-to-edge length: the distance between the centres plus one pixel, as calipers set on the
        outer edges of the two end pixels measure it. "One pixel" along the chord's unit direction ``u``
        (mm) is the diameter of the ellipse inscribed in a pixel, ``1 / hypot(u_row / s_row, u_col /
        s_col)``: the pixel size itself, in every direction, for square pixels. (The width of the
        pixel square along ``u`` would overstate oblique chords by up to 41 % of a pixel.)
    centre_mm
        Distance between the two centres.
    ends
        The caliper ends: ``start`` and ``end`` moved apart by half a pixel width each along the chord,
        as fractional ``(row, col)`` indices; their distance in mm is ``length_mm``.
    """

    start: tuple[int, int]
    end: tuple[int, int]
    length_mm: float
    centre_mm: float
    ends: tuple[tuple[float, float], tuple[float, float]]

    def vector_mm(self, spacing: tuple[float, float]) -> np.ndarray:
        """``end - start`` in mm (row, col)."""
        return (np.subtract(self.end, self.start)) * np.asarray(spacing, float)

    def angle_deg(self, spacing: tuple[float, float]) -> float:
        """Direction in mm, degrees in [0, 180) from the column axis towards the row axis."""
        v = self.vector_mm(spacing)
        return float(np.degrees(np.arctan2(v[0], v[1])) % 180.0)

    def shifted(self, d_row: int, d_col: int) -> Chord:
        """The same chord ``(d_row, d_col)`` pixels further on (from a crop to the full slice)."""
        (a, b), (c, d) = self.ends
        return Chord((self.start[0] + d_row, self.start[1] + d_col), (self.end[0] + d_row, self.end[1] + d_col),
                     self.length_mm, self.centre_mm, ((a + d_row, b + d_col), (c + d_row, d + d_col)))


def make_chord(p: np.ndarray | Sequence[int], q: np.ndarray | Sequence[int], spacing: tuple[float, float]) -> Chord:
    """The :class:`Chord` between pixel centres ``p`` and ``q`` (``(row, col)``) for a pixel spacing in mm."""
    sp = np.asarray(spacing, float)
    p0, q0 = np.asarray(p, float), np.asarray(q, float)
    v = (q0 - p0) * sp
    centre = float(np.hypot(*v))
    u = v / centre if centre > 0 else np.array([0.0, 1.0])  # a single pixel: across its columns
    width = float(1.0 / np.hypot(u[0] / sp[0], u[1] / sp[1]))
    half = u * width / 2 / sp  # half a pixel width along the chord, in index units
    ends = (tuple(float(c) for c in p0 - half), tuple(float(c) for c in q0 + half))
    return Chord((int(p0[0]), int(p0[1])), (int(q0[0]), int(q0[1])), centre + width, centre, ends)  # type: ignore


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """``(N, 2)`` int indices of the region's pixels that have a 4-neighbour outside it."""
    m = np.asarray(mask, bool)
    edge = m & ~ndimage.binary_erosion(m, structure=_CROSS, border_value=0)
    return np.argwhere(edge)


def chords_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """For segments ``p[i] -> q[i]`` (``(K, 2)`` pixel indices), whether each digital line lies in ``mask``."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    m = np.asarray(mask, bool)
    if len(p) == 0:
        return np.zeros(0, bool)
    d = q - p
    n = np.maximum(np.abs(d).max(axis=1), 1.0)
    ok = np.ones(len(p), bool)
    if n.max() > 2 * _COARSE:
        # Most candidates leave the region somewhere: reject them on a few of their samples first.
        t = np.floor(np.linspace(0.0, 1.0, _COARSE)[None, :] * n[:, None]) / n[:, None]
        ok = _samples_inside(m, p, d, t)
        if not ok.any():
            return ok
    idx = np.flatnonzero(ok)
    steps = np.arange(int(n[idx].max()) + 1, dtype=float)
    t = np.minimum(steps[None, :] / n[idx, None], 1.0)
    ok[idx] = _samples_inside(m, p[idx], d[idx], t)
    return ok


def _samples_inside(mask: np.ndarray, p: np.ndarray, d: np.ndarray, t: np.ndarray) -> np.ndarray:
    pts = np.rint(p[:, None, :] + t[..., None] * d[:, None, :]).astype(np.intp)
    return mask[pts[..., 0], pts[..., 1]].all(axis=1)


def _first_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray, lengths: np.ndarray) -> int | None:
    """Index of the longest segment whose line lies inside ``mask`` (None when none does)."""
    order = np.argsort(-lengths, kind="stable")
    for lo in range(0, len(order), _BATCH):
        idx = order[lo:lo + _BATCH]
        ok = np.flatnonzero(chords_inside(mask, p[idx], q[idx]))
        if ok.size:
            return int(idx[ok[0]])
    return None


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def hull_diameter(points: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Indices into ``points`` of its convex hull's vertices, and the hull's diameter in mm."""
    mm = points * np.asarray(spacing, float)
    try:
        verts = ConvexHull(mm).vertices if len(points) >= 3 else np.arange(len(points))
    except QhullError:  # collinear points: every point is a candidate
        verts = np.arange(len(points))
    if len(verts) < 2:
        return verts, 0.0
    i, j = _pairs(len(verts))
    return verts, float(np.sqrt(((mm[verts[i]] - mm[verts[j]]) ** 2).sum(axis=1)).max())


def long_axis(mask: np.ndarray, spacing: tuple[float, float], boundary: np.ndarray | None = None) -> Chord | None:
    """The longest inside chord between two boundary pixels of ``mask`` (None for an empty mask).

    Parameters
    ----------
    mask
        2D boolean region.
    spacing
        ``(row, col)`` pixel size in mm.
    boundary
        Its boundary pixels, when already computed.
    """
    pts = boundary_pixels(mask) if boundary is None else boundary
    if len(pts) == 0:
        return None
    if len(pts) == 1:
        return make_chord(pts[0], pts[0], spacing)
    sp = np.asarray(spacing, float)
    verts, _ = hull_diameter(pts, spacing)
    hv = pts[verts]
    i, j = _pairs(len(hv))
    lengths = np.sqrt((((hv[i] - hv[j]) * sp) ** 2).sum(axis=1))
    k = _first_inside(mask, hv[i], hv[j], lengths)
    best_len = -1.0 if k is None else float(lengths[k])
    if k is not None and best_len >= lengths.max():
        return make_chord(hv[i[k]], hv[j[k]], spacing)
    # Not convex enough: try every boundary pair longer than the best inside hull pair.
    i2, j2 = _pairs(len(pts))
    l2 = np.sqrt((((pts[i2] - pts[j2]) * sp) ** 2).sum(axis=1))
    keep = np.flatnonzero(l2 > best_len)
    k2 = _first_inside(mask, pts[i2[keep]], pts[j2[keep]], l2[keep])
    if k2 is not None:
        m = keep[k2]
        return make_chord(pts[i2[m]], pts[j2[m]], spacing)
    if k is not None:
        return make_chord(hv[i[k]], hv[j[k]], spacing)
    return make_chord(pts[0], pts[0], spacing)  # pragma: no cover - adjacent boundary pixels always qualify


def perpendicular(mask: np.ndarray, spacing: tuple[float, float], axis: Chord,
                  tolerance_deg: float = PERP_TOLERANCE_DEG, boundary: np.ndarray | None = None) -> Chord | None:
    """The longest inside chord between boundary pixels within ``tolerance_deg`` of perpendicular to ``axis``.

    Returns None when ``axis`` has no length or no boundary pair has such a direction.
    """
    sp = np.asarray(spacing, float)
    u = axis.vector_mm(spacing)
    norm = float(np.hypot(*u))
    if norm == 0:
        return None
    u = u / norm
    pts = boundary_pixels(mask) if boundary is None else boundary
    i, j = _pairs(len(pts))
    v = (pts[j] - pts[i]) * sp
    lengths = np.sqrt((v**2).sum(axis=1))
    cos = np.abs(v @ u) / np.maximum(lengths, 1e-12)
    keep = np.flatnonzero((cos <= np.sin(np.radians(tolerance_deg)) + 1e-12) & (lengths > 0))
    k = _first_inside(mask, pts[i[keep]], pts[j[keep]], lengths[keep])
    if k is None:
        return None
    m = keep[k]
    return make_chord(pts[i[m]], pts[j[m]], spacing)


def chord_length_mm(start: np.ndarray, end: np.ndarray, spacing: tuple[float, float]) -> float:
    """Distance in mm between two (possibly fractional) ``(row, col)`` positions (e.g. caliper ends)."""
    return float(np.hypot(*((np.asarray(end, float) - np.asarray(start, float)) * np.asarray(spacing, float))))
