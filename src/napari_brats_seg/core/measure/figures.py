"""Key images of a report, drawn with matplotlib (no pyplot, no GUI backend): the RANO slice with its
calipers, and axial, coronal and sagittal planes through the tumour with the labels and a legend.

Radiological orientation, from the internal LPS ``(z, y, x)`` arrays (x grows to the patient's Left,
y to Posterior, z to Superior):

- axial ``[z]``: rows ``y`` (anterior at the top), columns ``x`` (the patient's right on the left): the
  array as it is;
- coronal ``[:, y]``: rows ``z`` flipped (superior at the top), columns ``x`` (right on the left);
- sagittal ``[:, :, x]``: rows ``z`` flipped (superior at the top), columns ``y`` (anterior on the
  left, as PACS and ITK-SNAP show it).

Each panel is drawn in millimetres (pixel spacing honoured) and its edges are lettered (R/L, A/P, S/I).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import labels as lab
from .measurement import CaseMeasurement
from .rano import RegionMeasurement

#: Edge letters of each plane: (left, right, top, bottom).
EDGE_LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
_OVERLAY_ALPHA = 0.45


def plane(volume: np.ndarray, name: str, index: int) -> np.ndarray:
    """One plane of an internal ``(z, y, x)`` volume in radiological display order (row 0 at the top)."""
    v = np.asarray(volume)
    if name == "axial":
        return v[index]
    if name == "coronal":
        return v[::-1, index, :]
    if name == "sagittal":
        return v[::-1, :, index]
    raise ValueError(f"unknown plane {name!r}: axial, coronal or sagittal")


def plane_spacing(spacing: Sequence[float], name: str) -> tuple[float, float]:
    """``(row, col)`` pixel size in mm of a plane drawn by :func:`plane`."""
    sz, sy, sx = (float(s) for s in spacing)
    return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[name]


def overlay_rgba(labels2d: np.ndarray, alpha: float = _OVERLAY_ALPHA) -> np.ndarray:
    """RGBA image of internal classes in their fixed colours (transparent background)."""
    lut = np.zeros((256, 4))
    for k, c in lab.CLASS_COLOURS.items():
        lut[k] = c
    rgba = lut[np.asarray(labels2d, np.uint8)]
    rgba[..., 3] = np.where(np.asarray(labels2d) > 0, alpha, 0.0)
    return rgba


def _limits(image: np.ndarray) -> tuple[float, float]:
    nz = image[image != 0]
    if nz.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(nz, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1))


def _panel(ax, image2d: np.ndarray, labels2d: np.ndarray | None, px: tuple[float, float], name: str,
           title: str, limits: tuple[float, float]) -> None:
    h, w = image2d.shape
    extent = (-0.5 * px[1], (w - 0.5) * px[1], (h - 0.5) * px[0], -0.5 * px[0])  # mm, row 0 at the top
    ax.imshow(image2d, cmap="gray", vmin=limits[0], vmax=limits[1], extent=extent, interpolation="nearest")
    if labels2d is not None:
        ax.imshow(overlay_rgba(labels2d), extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    left, right, top, bottom = EDGE_LETTERS[name]
    style = {"color": "white", "fontsize": 9, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def legend_handles(present: Sequence[int] | None = None) -> list[Patch]:
    """Legend patches of the tumour classes (all three, or those ``present``)."""
    keys = [k for k in lab.TUMOUR_CLASSES if present is None or k in present]
    return [Patch(color=lab.CLASS_COLOURS[k], label=f"{lab.CLASS_KEYS[k]} {lab.CLASS_NAMES[k]}") for k in keys]


def tumour_centre(internal: np.ndarray) -> tuple[int, int, int]:
    """The voxel at the centre of the whole tumour's bounding box (the volume's centre without tumour)."""
    idx = np.argwhere(np.asarray(internal) > 0)
    if idx.size == 0:
        return tuple(int(s) // 2 for s in np.shape(internal))  # type: ignore[return-value]
    return tuple(int(v) for v in (idx.min(0) + idx.max(0)) // 2)  # type: ignore[return-value]


def three_planes_figure(image: np.ndarray, internal: np.ndarray, spacing: Sequence[float], *,
                        centre: tuple[int, int, int] | None = None, image_name: str = "T1ce") -> Figure:
    """Axial, coronal and sagittal planes through the tumour, labels overlaid, with a legend."""
    c = tumour_centre(internal) if centre is None else centre
    fig = Figure(figsize=(9.0, 3.6), dpi=110, layout="constrained")
    axes = fig.subplots(1, 3)
    limits = _limits(np.asarray(image)[:: 2, :: 2, :: 2])
    for ax, (name, index) in zip(axes, (("axial", c[0]), ("coronal", c[1]), ("sagittal", c[2]))):
        _panel(ax, plane(image, name, index), plane(internal, name, index), plane_spacing(spacing, name), name,
               f"{name} {index} ({image_name})", limits)
    present = sorted(lab.unique_values(internal))
    fig.legend(handles=legend_handles(present), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def rano_figure(image: np.ndarray, internal: np.ndarray, measurement: CaseMeasurement,
                figure: RegionMeasurement | None = None, image_name: str = "T1ce") -> Figure:
    """The slice of the largest lesion with the calipers of every lesion measured on it, lengths written."""
    fig_m = figure if figure is not None else (measurement.et if measurement.et.lesions else measurement.wt)
    fig = Figure(figsize=(5.0, 5.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    if not fig_m.lesions:
        ax.text(0.5, 0.5, "no lesion to measure", ha="center", va="center")
        ax.set_axis_off()
        return fig
    z = fig_m.lesions[0].slice
    px = plane_spacing(measurement.spacing, "axial")
    _panel(ax, plane(image, "axial", z), plane(internal, "axial", z), px, "axial",
           f"{'RANO' if fig_m.region == 'ET' else 'RANO-LGG style (WT)'}: axial slice {z} ({image_name})",
           _limits(np.asarray(image)[z]))
    for les in fig_m.lesions:
        if les.slice != z or les.long is None:
            continue
        for chord, colour in ((les.long, "cyan"), (les.perp, "magenta")):
            if chord is None:
                continue
            (r0, c0), (r1, c1) = chord.ends
            ax.plot([c0 * px[1], c1 * px[1]], [r0 * px[0], r1 * px[0]], color=colour, linewidth=1.5)
            ax.annotate(f"{chord.length_mm:.1f} mm", (c1 * px[1], r1 * px[0]), color=colour, fontsize=8,
                        xytext=(3, 3), textcoords="offset points")
        (r0, c0), _ = les.long.ends
        ax.annotate(f"L{les.id}", (c0 * px[1], r0 * px[0]), color="white", fontsize=8, xytext=(-12, -10),
                    textcoords="offset points")
    # Zoom on the lesions of this slice (with a margin), keeping the mm aspect.
    ends = np.array([e for les in fig_m.lesions if les.slice == z and les.long is not None
                     for ch in (les.long, les.perp) if ch is not None for e in ch.ends])
    lo, hi = ends.min(0) - 25 / np.asarray(px), ends.max(0) + 25 / np.asarray(px)
    ax.set_xlim(lo[1] * px[1], hi[1] * px[1])
    ax.set_ylim(hi[0] * px[0], lo[0] * px[0])
    return fig
