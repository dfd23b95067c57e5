"""The measurement of one case's label map: RANO (ET), RANO-LGG style (WT), volumes; and its JSON.

World coordinates are those nibabel reports for the labels file: RAS+ millimetres, the file's affine
applied to voxel indices (internal ``(z, y, x)`` indices go through
:attr:`..geometry.Geometry.internal_affine`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import labels as lab
from ..errors import CaseError
from ..geometry import Geometry
from ..progress import CancelToken, ProgressCallback
from .chords import PERP_TOLERANCE_DEG, Chord
from .rano import MAX_TARGETS, MIN_SLICES, THICK_SLICE_MM, LesionMeasurement, RegionMeasurement, measure_region
from .volumes import count_lesions, volumes_ml

#: How the endpoints' coordinates are given.
FRAME = "RAS+ mm: world coordinates of the labels file (its affine applied to voxel indices, as nibabel)"


def describe_plane(geometry: Geometry | None) -> str:
    """Which plane the measured slices are, in words."""
    if geometry is None:
        return "axial: internal z slices (no geometry given: assumed the patient's axial plane)"
    if not geometry.is_oblique:
        return "axial: the patient's axial plane (slices of constant S)"
    a = geometry.internal_affine[:3, :3]
    normal = np.cross(a[:, 1], a[:, 2])
    tilt = float(np.degrees(np.arccos(min(1.0, abs(normal[2]) / np.linalg.norm(normal)))))
    return (f"axial: the acquisition slices closest to axial, tilted {tilt:.1f} degrees from the patient's "
            "axial plane (oblique series)")


@dataclass
class CaseMeasurement:
    """Everything measured on one case's label map.

    Attributes
    ----------
    et, wt
        RANO figure of the enhancing tumour; RANO-LGG style figure of the whole tumour.
    volumes_ml
        NCR, ED, ET, TC, WT (and RC when present).
    lesion_count
        ``{"ET": n, "WT": n}``: 3D components of each region.
    geometry
        The labels file's geometry (for world coordinates), None for arrays without one.
    """

    et: RegionMeasurement
    wt: RegionMeasurement
    volumes_ml: dict[str, float]
    lesion_count: dict[str, int]
    spacing: tuple[float, float, float]
    plane: str
    geometry: Geometry | None = None
    case_id: str | None = None
    source: str | None = None
    scheme: str | None = None
    notes: list[str] = field(default_factory=list)

    def world(self, z: float, yx: tuple[float, float]) -> list[float]:
        """RAS+ mm of internal voxel position ``(z, y, x)`` (indices times spacing without a geometry)."""
        idx = np.array([z, yx[0], yx[1], 1.0])
        if self.geometry is None:
            return [float(v) for v in idx[:3] * np.asarray(self.spacing)]
        return [round(float(v), 3) for v in (self.geometry.internal_affine @ idx)[:3]]

    def file_voxel(self, z: int, yx: tuple[int, int]) -> list[int]:
        """The file's own voxel indices ``(i, j, k)`` of internal voxel ``(z, y, x)``."""
        if self.geometry is None:
            return [int(z), int(yx[0]), int(yx[1])]
        ijk = np.linalg.solve(self.geometry.affine, np.append(self.world(z, yx), 1.0))[:3]
        return [int(round(float(v))) for v in ijk]

    def _chord_json(self, z: int, chord: Chord | None) -> list | None:
        return None if chord is None else [self.world(z, chord.ends[0]), self.world(z, chord.ends[1])]

    def lesion_json(self, les: LesionMeasurement) -> dict:
        """One lesion as the JSON output lists it."""
        return {
            "id": les.id, "slice": les.slice, "long_mm": round(les.long_mm, 2), "perp_mm": round(les.perp_mm, 2),
            "product_mm2": round(les.product_mm2, 1), "measurable": les.measurable, "target": les.target,
            "reason": les.reason, "n_slices": les.n_slices, "volume_ml": round(les.volume_ml, 3),
            "endpoints_mm": {"long": self._chord_json(les.slice, les.long),
                             "perp": self._chord_json(les.slice, les.perp)},
            "endpoints_voxel": {
                k: None if c is None else [self.file_voxel(les.slice, c.start), self.file_voxel(les.slice, c.end)]
                for k, c in (("long", les.long), ("perp", les.perp))},
        }

    def region_json(self, reg: RegionMeasurement) -> dict:
        """One figure (ET or WT) as JSON."""
        spd = reg.spd_mm2
        return {"region": reg.region, "label": reg.label, "status": reg.status,
                "spd_mm2": None if spd is None else round(spd, 1),
                "n_target_lesions": len(reg.targets), "lesions": [self.lesion_json(les) for les in reg.lesions]}

    def to_dict(self) -> dict:
        """The JSON output of ``brats-seg measure --json``."""
        et = self.region_json(self.et)
        return {
            "case_id": self.case_id, "labels": self.source, "scheme": self.scheme, "plane": self.plane,
            "spacing_zyx_mm": [round(s, 4) for s in self.spacing], "frame": FRAME,
            "slice_index": "internal axial index z (0 = most inferior slice), see endpoints_voxel for the file's",
            "rules": {"min_diameter_mm": self.et.min_diameter_mm, "min_slices": MIN_SLICES,
                      "thick_slice_mm": THICK_SLICE_MM, "max_targets": MAX_TARGETS,
                      "perpendicular_tolerance_deg": self.et.tolerance_deg,
                      "measured_region": "enhancing lesion + the necrosis inside its convex hull on the slice, "
                                         "holes filled"},
            "status": et["status"], "lesions": et["lesions"], "spd_mm2": et["spd_mm2"],
            "n_target_lesions": et["n_target_lesions"],
            "whole_tumour": self.region_json(self.wt),
            "volumes_ml": {k: round(v, 3) for k, v in self.volumes_ml.items()},
            "lesion_count": dict(self.lesion_count), "notes": list(self.notes),
        }


def measure_labels(internal: np.ndarray, geometry: Geometry | Sequence[float], *, case_id: str | None = None,
                   source: str | os.PathLike | None = None, scheme: str | None = None,
                   tolerance_deg: float = PERP_TOLERANCE_DEG, on_progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> CaseMeasurement:
    """Measure an internal-class ``(z, y, x)`` label map.

    Parameters
    ----------
    internal
        Internal classes (0 background, 1 NCR, 2 ED, 3 ET, 4 RC).
    geometry
        The labels' :class:`~..geometry.Geometry`, or just the ``(z, y, x)`` spacing in mm.

    Raises
    ------
    CaseError
        For an empty label map (nothing labelled: no measurement is made, rather than zeros) or values
        that are no internal class.
    """
    arr = np.asarray(internal)
    geo = geometry if isinstance(geometry, Geometry) else None
    spacing = geo.spacing if geo is not None else tuple(float(s) for s in geometry)
    if arr.ndim != 3:
        raise CaseError(f"a 3D label map is needed, got shape {arr.shape}", source)
    bad = sorted(lab.unique_values(arr) - set(lab.CLASS_NAMES))
    if bad:
        raise CaseError(f"values {bad} are no internal class (0-4): convert the labels first", source)
    masks = lab.region_masks(arr)
    if not masks["WT"].any():
        raise CaseError("the label map is empty (no tumour class labelled): nothing to measure", source)
    et = measure_region(masks["ET"], spacing, region="ET", tolerance_deg=tolerance_deg,
                        enclosed=arr == lab.NECROTIC, on_progress=on_progress, cancel=cancel)
    wt = measure_region(masks["WT"], spacing, region="WT", tolerance_deg=tolerance_deg, cancel=cancel)
    notes = []
    if not et.lesions:
        notes.append("no enhancing tumour: no RANO measurement; see the whole-tumour (RANO-LGG style) figure")
    elif not et.targets:
        notes.append("no measurable enhancing lesion: RANO SPD undefined (non-measurable disease)")
    return CaseMeasurement(et, wt, volumes_ml(arr, spacing), {"ET": len(et.lesions), "WT": count_lesions(masks["WT"])},
                           spacing, describe_plane(geo), geo, case_id, None if source is None else str(source),
                           scheme, notes)


def case_id_of_labels(path: str | os.PathLike) -> str:
    """``.../Brats18_X_seg.nii.gz`` -> ``Brats18_X`` (the file stem without a ``seg`` suffix)."""
    from ..io import strip_nifti_suffix

    stem = strip_nifti_suffix(path)
    for suf in ("_seg", "-seg", "_labels", "-labels"):
        if stem.lower().endswith(suf):
            return stem[: -len(suf)]
    return stem


def measure_file(labels: str | os.PathLike, *, case: str | os.PathLike | None = None, scheme: str | None = None,
                 tolerance_deg: float = PERP_TOLERANCE_DEG, cancel: CancelToken | None = None) -> CaseMeasurement:
    """Read a label map (any scheme, through :func:`..io.read_labels`) and measure it.

    Parameters
    ----------
    labels
        The label map file.
    case
        The case it belongs to: its id, layout (for the scheme) and grid (the labels must lie on it).
    scheme
        The file's label scheme; detected when None.

    Raises
    ------
    CaseError
        Unreadable file, unknown or ambiguous scheme, a grid off the case's, or an empty map.
    """
    from ..io import find_case_files, read_labels

    geo_ref, layout, case_id = None, None, case_id_of_labels(labels)
    if case is not None:
        cf = find_case_files(case)
        first = cf.msd_file or next(iter(cf.images.values()))
        try:
            geo_ref = Geometry.from_image(nib.load(str(first)))
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types for foreign files
            raise CaseError(f"not a readable NIfTI file ({exc})", first) from None
        layout, case_id = cf.layout, cf.case_id
    internal, sch, geo = read_labels(labels, scheme=scheme, layout=layout, geometry=geo_ref)
    return measure_labels(internal, geo, case_id=case_id, source=Path(labels), scheme=sch.name,
                          tolerance_deg=tolerance_deg, cancel=cancel)
