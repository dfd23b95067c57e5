"""Bidimensional RANO measurement of the lesions of one region (enhancing tumour, or whole tumour).

What is measured, and our choices
---------------------------------
- **Lesions** are the 3D connected components (26-connectivity, as :mod:`..lesionwise`) of the region:
  enhancing tumour (internal class 3) for RANO; the whole tumour (NCR | ED | ET) for the RANO-LGG
  style figure of non-enhancing tumours.
- **Slice.** Each lesion is measured on every axial slice (internal ``z``) it touches; the slice kept
  is the one with the largest product of the two diameters.
- **Measured region on a slice.** The lesion's pixels, plus the necrotic core (NCR) inside their
  convex hull on that slice, with every hole this encloses filled (:func:`measured_region`). RANO
  measures the contrast-enhancing lesion across its outer contour: for a rim of enhancement around
  necrosis or a cyst, the diameters run across the rim *through* the necrotic centre, and the product
  includes the cavity the rim encloses, also where the labelled rim is broken (real rims often are:
  the hull closes the gaps over necrosis, not over edema or brain). Necrosis outside the hull is not
  measured, nor is necrosis alone; the chords stay inside the measured region, in one 8-connected
  piece of it.
- **Diameters** (see :mod:`.chords`): the longest chord inside that region, and the longest inside
  chord within ``tolerance_deg`` of perpendicular to it, found between pixel centres and reported
  from edge to edge (the centres' distance plus one pixel width along the chord), in mm honouring the
  in-plane pixel spacing.
- **Measurable** when both diameters are at least 10 mm and the lesion is seen on at least 2 slices.
  With slices thicker than 5 mm the minimum diameter becomes twice the slice thickness (RANO, after
  RECIST 1.1). The slice thickness is the ``z`` spacing (a NIfTI file has no slice-gap record).
- **Targets**: up to 5 measurable lesions, the largest products; the **SPD** is the sum of their
  products. With no measurable lesion the SPD is ``None`` (not 0) and the status says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from ..lesionwise import CONNECTIVITY_26
from ..progress import CancelToken, ProgressCallback, check, report
from .chords import PERP_TOLERANCE_DEG, Chord, boundary_pixels, hull_diameter, long_axis, perpendicular

#: Minimum of both diameters of a measurable lesion (mm).
MIN_DIAMETER_MM = 10.0
#: Slices thicker than this raise the minimum diameter to twice the thickness (mm).
THICK_SLICE_MM = 5.0
#: A measurable lesion is seen on at least this many slices.
MIN_SLICES = 2
#: At most this many target lesions enter the SPD.
MAX_TARGETS = 5
_EIGHT = np.ones((3, 3), dtype=bool)
#: The figures :func:`measure_region` makes, by region.
REGION_LABELS = {
    "ET": "RANO: enhancing tumour (bidimensional products of the contrast-enhancing lesions)",
    "WT": "RANO-LGG style: whole tumour (NCR + ED + ET, the T2/FLAIR abnormality), for non-enhancing tumours",
}


@dataclass
class LesionMeasurement:
    """One lesion's bidimensional measurement.

    Attributes
    ----------
    id
        Lesion number (1..n, by decreasing product).
    slice
        Internal axial index ``z`` of the measured slice.
    n_slices
        How many axial slices the lesion touches.
    volume_ml
        The lesion's volume.
    long, perp
        The two diameters (``(row, col)`` = ``(y, x)`` pixel ends on ``slice``), None when absent.
    measurable
        Whether RANO counts it as measurable; ``reason`` says why (not).
    target
        Whether it is one of the target lesions of the SPD.
    """

    id: int
    slice: int
    n_slices: int
    volume_ml: float
    long: Chord | None
    perp: Chord | None
    measurable: bool = False
    reason: str = ""
    target: bool = False

    @property
    def long_mm(self) -> float:
        """Longest diameter (mm); 0 when there is none."""
        return self.long.length_mm if self.long is not None else 0.0

    @property
    def perp_mm(self) -> float:
        """Longest perpendicular diameter (mm); 0 when there is none."""
        return self.perp.length_mm if self.perp is not None else 0.0

    @property
    def product_mm2(self) -> float:
        """Product of the two diameters (mm²)."""
        return self.long_mm * self.perp_mm


@dataclass
class RegionMeasurement:
    """The measurement of every lesion of one region and its sum of products.

    Attributes
    ----------
    region
        ``"ET"`` or ``"WT"``; ``label`` says what the figure is.
    lesions
        Every lesion, largest product first.
    min_diameter_mm
        The measurability threshold that applied (10 mm, or twice a slice thickness over 5 mm).
    spacing
        Voxel spacing ``(z, y, x)`` in mm.
    """

    region: str
    label: str
    lesions: list[LesionMeasurement] = field(default_factory=list)
    min_diameter_mm: float = MIN_DIAMETER_MM
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    tolerance_deg: float = PERP_TOLERANCE_DEG

    @property
    def targets(self) -> list[LesionMeasurement]:
        """The target lesions (measurable, up to 5, largest products)."""
        return [les for les in self.lesions if les.target]

    @property
    def spd_mm2(self) -> float | None:
        """Sum of the target lesions' products; None when no lesion is measurable."""
        t = self.targets
        return float(sum(les.product_mm2 for les in t)) if t else None

    @property
    def status(self) -> str:
        """The result in words (measurable disease, non-measurable only, or no lesion)."""
        name = "enhancing tumour" if self.region == "ET" else "whole tumour"
        if not self.lesions:
            return f"no {name}: nothing to measure"
        n, t = len(self.lesions), self.targets
        if not t:
            return (f"no measurable {name} lesion ({n} lesion{'s' * (n > 1)}, none with both diameters "
                    f">= {self.min_diameter_mm:g} mm on >= {MIN_SLICES} slices): non-measurable disease only")
        extra = sum(1 for les in self.lesions if les.measurable) - len(t)
        more = f", {extra} more measurable as non-target" if extra else ""
        return f"{len(t)} target lesion{'s' * (len(t) > 1)}{more}; SPD {self.spd_mm2:.1f} mm²"


def min_diameter_mm(slice_thickness_mm: float) -> float:
    """The minimum diameter of a measurable lesion for a slice thickness (RANO)."""
    t = float(slice_thickness_mm)
    return 2.0 * t if t > THICK_SLICE_MM else MIN_DIAMETER_MM


def measurability(long_mm: float, perp_mm: float, n_slices: int, slice_thickness_mm: float) -> tuple[bool, str]:
    """Whether a lesion is RANO-measurable, and the reason in words."""
    need = min_diameter_mm(slice_thickness_mm)
    why = []
    if long_mm < need or perp_mm < need:
        why.append(f"diameters {long_mm:.1f} x {perp_mm:.1f} mm, both must be >= {need:g} mm")
    if n_slices < MIN_SLICES:
        why.append(f"seen on {n_slices} slice{'s' * (n_slices != 1)}, needs >= {MIN_SLICES}")
    if why:
        return False, "not measurable: " + "; ".join(why)
    return True, f"measurable: both diameters >= {need:g} mm, seen on {n_slices} slices"


def measure_slice(region: np.ndarray, spacing_yx: tuple[float, float], tolerance_deg: float = PERP_TOLERANCE_DEG,
                  enclosed: np.ndarray | None = None) -> tuple[Chord | None, Chord | None]:
    """The two diameters of one 2D region (its best 2D piece, see :func:`measured_pieces`): ``(long, perp)``."""
    m = np.asarray(region, bool)
    if not m.any():
        return None, None
    enc = None if enclosed is None else np.asarray(enclosed, bool)[None]
    _, axis, perp = _best_slice(m[None], spacing_yx, tolerance_deg, enc)  # type: ignore[arg-type]
    return axis, perp


def measured_region(lesion2d: np.ndarray, enclosed2d: np.ndarray | None = None) -> np.ndarray:
    """What is measured of a lesion on one slice: its pixels, the ``enclosed`` pixels (necrosis) inside
    their convex hull, and every hole this encloses, filled."""
    m = np.asarray(lesion2d, bool)
    if enclosed2d is not None and np.count_nonzero(m) >= 3:
        m = m | (np.asarray(enclosed2d, bool) & convex_hull_image(m))
    return ndimage.binary_fill_holes(m)


def measured_pieces(lesion: np.ndarray, enclosed: np.ndarray | None = None
                    ) -> list[tuple[int, tuple[int, int], np.ndarray]]:
    """The 2D pieces (8-connected, cropped) of the measured region on each slice: ``(z, (dy, dx), mask)``.

    Only pieces holding pixels of the lesion itself count (necrosis alone is never measured).
    """
    out = []
    for z in np.flatnonzero(lesion.any(axis=(1, 2))):
        region = measured_region(lesion[z], None if enclosed is None else enclosed[z])
        cc, _ = ndimage.label(region, structure=_EIGHT)
        for k, box in enumerate(ndimage.find_objects(cc), start=1):
            piece = cc[box] == k
            if (piece & lesion[z][box]).any():
                out.append((int(z), (box[0].start, box[1].start), piece))
    return out


def _best_slice(lesion: np.ndarray, spacing_yx: tuple[float, float], tolerance_deg: float,
                enclosed: np.ndarray | None = None) -> tuple[int, Chord | None, Chord | None]:
    """The slice (index into ``lesion``) with the largest product, and its two diameters.

    A chord's digital line is 8-connected, so it lies in one 2D piece of the measured region; the
    pieces of every slice are visited by decreasing hull diameter ``D``. Both diameters are at most
    ``D``, so a piece with ``D² <=`` the best product so far cannot win, and neither can one whose long
    axis squared is no larger (the perpendicular is never longer than the long axis).
    """
    cands = []
    for z, off, piece in measured_pieces(lesion, enclosed):
        b = boundary_pixels(piece)
        _, d = hull_diameter(b, spacing_yx)
        cands.append((d, z, off, piece, b))
    cands.sort(key=lambda c: (-c[0], c[1]))
    best: tuple[float, int, Chord | None, Chord | None] | None = None
    for d, z, off, piece, b in cands:
        if best is not None and d * d <= best[0]:
            break
        axis = long_axis(piece, spacing_yx, b)
        if best is not None and (axis is None or axis.length_mm ** 2 <= best[0]):
            continue
        perp = perpendicular(piece, spacing_yx, axis, tolerance_deg, b) if axis is not None else None
        prod = (axis.length_mm if axis else 0.0) * (perp.length_mm if perp else 0.0)
        if best is None or prod > best[0]:
            best = (prod, z, _shift(axis, *off), _shift(perp, *off))
    assert best is not None
    return best[1], best[2], best[3]


def _shift(chord: Chord | None, dy: int, dx: int) -> Chord | None:
    return None if chord is None else chord.shifted(dy, dx)


def measure_region(mask: np.ndarray, spacing: Sequence[float], *, region: str = "ET",
                   tolerance_deg: float = PERP_TOLERANCE_DEG, max_targets: int = MAX_TARGETS,
                   enclosed: np.ndarray | None = None, on_progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> RegionMeasurement:
    """Measure every lesion (3D component) of a boolean ``(z, y, x)`` mask.

    Parameters
    ----------
    mask
        The region (e.g. enhancing tumour) in internal ``(z, y, x)`` order.
    spacing
        Voxel spacing ``(z, y, x)`` in mm.
    region
        ``"ET"`` or ``"WT"``: names the figure.
    tolerance_deg
        How far from perpendicular the second diameter may be.
    max_targets
        At most this many target lesions (RANO: 5).
    enclosed
        A boolean ``(z, y, x)`` mask (necrotic core) measured with a lesion where it lies inside the
        convex hull of the lesion's pixels on a slice (:func:`measured_region`); None: the lesion alone.

    Returns
    -------
    RegionMeasurement
        Lesions numbered by decreasing product, targets marked, SPD.
    """
    m = np.asarray(mask, bool)
    sp = tuple(float(s) for s in spacing)
    if m.ndim != 3 or len(sp) != 3:
        raise ValueError(f"a 3D mask and 3 spacings are needed, got shape {m.shape} and spacing {sp}")
    out = RegionMeasurement(region, REGION_LABELS.get(region, region), [], min_diameter_mm(sp[0]), sp, tolerance_deg)
    cc, n = ndimage.label(m, structure=CONNECTIVITY_26)
    boxes = ndimage.find_objects(cc)
    voxel_ml = float(np.prod(sp)) / 1000.0
    found = []
    for k, box in enumerate(boxes, start=1):
        check(cancel)
        lesion = cc[box] == k
        enc = None if enclosed is None else np.asarray(enclosed, bool)[box]
        z, axis, perp = _best_slice(lesion, (sp[1], sp[2]), tolerance_deg, enc)
        dy, dx = box[1].start, box[2].start
        n_slices = int(np.count_nonzero(lesion.any(axis=(1, 2))))
        les = LesionMeasurement(0, int(z + box[0].start), n_slices, int(lesion.sum()) * voxel_ml,
                                _shift(axis, dy, dx), _shift(perp, dy, dx))
        les.measurable, les.reason = measurability(les.long_mm, les.perp_mm, n_slices, sp[0])
        found.append(les)
        report(on_progress, k, n, f"{region} lesion {k} of {n}")
    found.sort(key=lambda les: (-les.product_mm2, -les.volume_ml, les.slice))
    n_targets = 0
    for i, les in enumerate(found, start=1):
        les.id = i
        if les.measurable and n_targets < max_targets:
            les.target, n_targets = True, n_targets + 1
    out.lesions = found
    return out
