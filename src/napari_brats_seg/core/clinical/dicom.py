"""Find the series of a DICOM study and describe each from its headers alone.

:func:`discover` walks a folder tree, reads every file's header (pixels are not read), groups the
image objects by ``SeriesInstanceUID`` and returns one :class:`SeriesInfo` per series: number,
description, plane (axial / coronal / sagittal, or oblique with its angle from the nearest one), size,
pixel spacing, slice thickness and gap, TR/TE/TI, contrast-agent tags, acquisition time, file count,
and flags for localizers, derived images and non-image objects. Files that are not DICOM are
counted, never fatal; several patients or studies in one tree are an error naming them (a study is
one patient's one visit: mixing them silently would pair sequences of different people).

Single-frame objects (one slice a file) and enhanced multi-frame MR (one file, per-frame functional
groups) are both handled; the slice geometry of each frame is kept in :attr:`SeriesInfo.frames`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError

#: SOP classes that hold images we can read as volumes (MR, enhanced MR, CT, secondary capture).
IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image",
}
_LOCALIZER_WORDS = ("localizer", "localiser", "survey", "scout", "loc ", "3-plane", "3plane", "tripilot",
                    "aahead_scout")
_AXES = ("sagittal", "coronal", "axial")  # the LPS axis each plane's normal is closest to: x, y, z


@dataclass(frozen=True)
class Frame:
    """One slice: where it lies and where its pixels are.

    Attributes
    ----------
    position
        ImagePositionPatient (LPS mm) of the slice's first pixel.
    orientation
        ImageOrientationPatient: the row direction then the column direction (LPS cosines).
    pixel_spacing
        PixelSpacing (mm between rows, mm between columns).
    path
        The file.
    frame
        The frame's index in a multi-frame file (0 for a single-frame file).
    sop_uid
        SOPInstanceUID of the file (what a DICOM-SEG or the prepare record references).
    """

    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    path: Path
    frame: int = 0
    sop_uid: str = ""


@dataclass
class SeriesInfo:
    """What the headers say about one series (see :func:`discover`)."""

    uid: str
    number: int | None
    description: str
    modality: str
    sop_class: str
    rows: int
    columns: int
    frames: list[Frame] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    slice_thickness: float | None = None
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    contrast_agent: str | None = None
    acquisition_time: str | None = None
    image_type: tuple[str, ...] = ()
    acquisition_type: str | None = None
    scanning_sequence: str | None = None
    transfer_syntax: str | None = None
    study_uid: str = ""
    patient_key: str = ""
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``"<description> - <number>"``, the name PACS exports give the series' folder."""
        return f"{self.description or '(no description)'} - {self.number}"

    @property
    def orientations(self) -> list[tuple[float, ...]]:
        """The distinct slice orientations (rounded to 1e-4) in the series."""
        return sorted({tuple(round(v, 4) for v in f.orientation) for f in self.frames})

    def plane(self) -> tuple[str, float]:
        """The acquisition plane and its angle (degrees) from the nearest of axial/coronal/sagittal."""
        if not self.frames or len(self.orientations) != 1:
            return "mixed", float("nan")
        o = np.asarray(self.frames[0].orientation, float)
        normal = np.cross(o[:3], o[3:])
        axis = int(np.argmax(np.abs(normal)))
        angle = math.degrees(math.acos(min(1.0, abs(float(normal[axis])) / float(np.linalg.norm(normal)))))
        return _AXES[axis], angle

    def plane_text(self) -> str:
        """E.g. ``"axial"`` or ``"oblique (axial, 3.5 deg)"``."""
        name, angle = self.plane()
        if name == "mixed":
            return "mixed orientations"
        return name if angle < 0.5 else f"oblique ({name}, {angle:.1f} deg)"

    def slice_positions(self) -> np.ndarray:
        """Each frame's position along the slice normal (mm), in the frames' order."""
        o = np.asarray(self.frames[0].orientation, float)
        normal = np.cross(o[:3], o[3:])
        return np.array([float(np.dot(normal, f.position)) for f in self.frames])

    def slice_spacing(self) -> float | None:
        """The median distance between neighbouring slice positions (mm); None for one slice."""
        if len(self.orientations) != 1:
            return None
        pos = np.unique(np.round(self.slice_positions(), 3))
        return float(np.median(np.diff(pos))) if len(pos) > 1 else None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (no patient identifiers)."""
        spacing = self.slice_spacing()
        ps = self.frames[0].pixel_spacing if self.frames else None
        gap = (round(spacing - self.slice_thickness, 3)
               if spacing is not None and self.slice_thickness is not None else None)
        return {
            "number": self.number, "uid": self.uid, "description": self.description,
            "modality": self.modality, "object": IMAGE_SOP_CLASSES.get(self.sop_class, self.sop_class),
            "plane": self.plane_text(), "rows": self.rows, "columns": self.columns,
            "slices": len(self.frames), "files": len(self.files),
            "pixel_spacing_mm": list(ps) if ps else None,
            "slice_thickness_mm": self.slice_thickness,
            "slice_spacing_mm": round(spacing, 4) if spacing is not None else None, "gap_mm": gap,
            "tr_ms": self.repetition_time, "te_ms": self.echo_time, "ti_ms": self.inversion_time,
            "contrast_agent": self.contrast_agent, "acquisition_time": self.acquisition_time,
            "acquisition_type": self.acquisition_type, "image_type": list(self.image_type),
            "flags": list(self.flags),
        }


@dataclass
class Study:
    """The series found under a folder, and what was set aside."""

    root: Path
    series: list[SeriesInfo]
    not_dicom: list[Path] = field(default_factory=list)
    non_image: list[tuple[Path, str]] = field(default_factory=list)

    def find(self, key: str | int) -> SeriesInfo:
        """The series with this SeriesNumber, SeriesInstanceUID or label; CaseError if none or several."""
        text = str(key).strip()
        hits = [s for s in self.series if text in (str(s.number), s.uid, s.label)]
        if len(hits) != 1:
            listing = ", ".join(f"{s.number} ({s.description})" for s in self.series)
            what = "no series" if not hits else f"{len(hits)} series"
            raise CaseError(f"{what} with number or UID {text!r} (found: {listing})", self.root)
        return hits[0]

    def image_series(self) -> list[SeriesInfo]:
        """Series that could be a sequence role (not localizers, derived images or single slices)."""
        skip = {"localizer", "derived", "single slice", "mixed orientations"}
        return [s for s in self.series if not skip & set(s.flags)]


def _require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError:  # pragma: no cover - the [clinical] extra is part of the test set-up
        raise CaseError("reading DICOM needs pydicom: pip install 'napari-brats-seg[clinical]'") from None
    return pydicom


def _num(ds: Any, key: str) -> float | None:
    value = ds.get(key)
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _group_item(group: Any, shared: Any, name: str, i: int, path: Path) -> Any:
    """A functional group's first item, per-frame first, then shared; CaseError when neither has it."""
    for g in (group, shared):
        if g is not None and name in g:
            return g[name][0]
    raise CaseError(f"frame {i + 1} has no {name}", path)


def _frames_of(ds: Any, path: Path) -> list[Frame]:
    """The slice geometry of a single-frame or an enhanced multi-frame object."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if n > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
        frames = []
        for i, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
            pos = _group_item(group, shared, "PlanePositionSequence", i, path).ImagePositionPatient
            ori = _group_item(group, shared, "PlaneOrientationSequence", i, path).ImageOrientationPatient
            ps = _group_item(group, shared, "PixelMeasuresSequence", i, path).PixelSpacing
            frames.append(Frame(tuple(map(float, pos)), tuple(map(float, ori)), tuple(map(float, ps)), path, i,
                                str(ds.get("SOPInstanceUID", ""))))
        return frames
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        return []
    ps = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)
    return [Frame(tuple(map(float, ds.ImagePositionPatient)), tuple(map(float, ds.ImageOrientationPatient)),
                  tuple(map(float, ps)), path, 0,
                  str(ds.get("SOPInstanceUID", "")))]


def _new_series(ds: Any, path: Path) -> SeriesInfo:
    number = ds.get("SeriesNumber")
    shared_thickness = None
    if "SharedFunctionalGroupsSequence" in ds:
        pm = ds.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence")
        shared_thickness = _num(pm[0], "SliceThickness") if pm else None
    patient = "|".join(str(ds.get(k, "")) for k in ("PatientID", "PatientName"))
    return SeriesInfo(
        uid=str(ds.SeriesInstanceUID), number=int(number) if number not in (None, "") else None,
        description=str(ds.get("SeriesDescription", "")).strip(), modality=str(ds.get("Modality", "")),
        sop_class=str(ds.get("SOPClassUID", "")), rows=int(ds.get("Rows", 0)), columns=int(ds.get("Columns", 0)),
        slice_thickness=_num(ds, "SliceThickness") or shared_thickness,
        repetition_time=_num(ds, "RepetitionTime"), echo_time=_num(ds, "EchoTime"),
        inversion_time=_num(ds, "InversionTime"),
        contrast_agent=(str(ds.get("ContrastBolusAgent")).strip() or None) if "ContrastBolusAgent" in ds else None,
        acquisition_time=str(ds.get("AcquisitionTime") or ds.get("SeriesTime") or "") or None,
        image_type=tuple(str(v) for v in (ds.get("ImageType") or ())),
        acquisition_type=str(ds.get("MRAcquisitionType", "")) or None,
        scanning_sequence=str(ds.get("ScanningSequence", "")) or None,
        transfer_syntax=str(getattr(ds.file_meta, "TransferSyntaxUID", "")) or None,
        study_uid=str(ds.get("StudyInstanceUID", "")), patient_key=patient)


def _flag(series: SeriesInfo) -> None:
    desc = series.description.lower()
    types = {t.upper() for t in series.image_type}
    if "LOCALIZER" in types or any(w in desc for w in _LOCALIZER_WORDS) or len(series.orientations) > 1 \
            and len(series.frames) < 20:
        series.flags.append("localizer")
    if "DERIVED" in types or "SECONDARY" in types:
        series.flags.append("derived")
    if "PROJECTION IMAGE" in types:
        series.flags.append("projection image")
    if len(series.orientations) > 1 and "localizer" not in series.flags:
        series.flags.append("mixed orientations")
    if len(series.frames) == 1:
        series.flags.append("single slice")


def _walk(root: Path) -> list[Path]:
    files = []
    for dirpath, _dirs, names in os.walk(root):
        files.extend(Path(dirpath) / n for n in sorted(names) if not n.startswith("."))
    return sorted(files)


def discover(root: str | os.PathLike, on_progress: Callable[[int, int, str], None] | None = None) -> Study:
    """Every series under ``root``, read from the headers.

    Parameters
    ----------
    root
        A study folder (any depth of subfolders), or one DICOM file.
    on_progress
        Optional ``(done, total, message)`` callback, once per file.

    Raises
    ------
    CaseError
        When ``root`` does not exist, holds no DICOM image at all, or holds several patients or
        studies (the message names them by study date/description and series count, never by
        patient name).
    """
    pydicom = _require_pydicom()
    from pydicom.errors import InvalidDicomError

    root = Path(root)
    if not root.exists():
        raise CaseError("no such file or folder", root)
    paths = [root] if root.is_file() else _walk(root)
    by_uid: dict[str, SeriesInfo] = {}
    study = Study(root, [])
    for i, path in enumerate(paths, 1):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
            study.not_dicom.append(path)
            continue
        if on_progress is not None:
            on_progress(i, len(paths), "reading DICOM headers")
        if "SeriesInstanceUID" not in ds or "PixelData" not in ds and "Rows" not in ds:
            study.non_image.append((path, str(ds.get("Modality", "?"))))
            continue
        if str(ds.get("SOPClassUID", "")) not in IMAGE_SOP_CLASSES:
            study.non_image.append((path, str(ds.get("Modality", "?"))))
            continue
        series = by_uid.get(str(ds.SeriesInstanceUID))
        if series is None:
            series = by_uid[str(ds.SeriesInstanceUID)] = _new_series(ds, path)
        series.files.append(path)
        series.frames.extend(_frames_of(ds, path))
    if not by_uid:
        found = f"{len(study.not_dicom)} file(s) that are not DICOM" if study.not_dicom else "no files"
        if study.non_image:
            found += f", {len(study.non_image)} DICOM object(s) without an image"
        raise CaseError(f"no DICOM image series found ({found})", root)
    _check_one_study(root, list(by_uid.values()))
    for series in by_uid.values():
        _flag(series)
    study.series = sorted(by_uid.values(), key=lambda s: (s.number is None, s.number or 0, s.uid))
    return study


def _check_one_study(root: Path, series: Sequence[SeriesInfo]) -> None:
    studies = sorted({s.study_uid for s in series})
    patients = sorted({s.patient_key for s in series})
    if len(studies) > 1 or len(patients) > 1:
        groups = []
        for uid in studies:
            members = [s for s in series if s.study_uid == uid]
            groups.append(f"study ...{uid[-8:]} ({len(members)} series: "
                          + ", ".join(str(s.number) for s in members) + ")")
        what = f"{len(patients)} patients" if len(patients) > 1 else f"{len(studies)} studies"
        raise CaseError(f"the folder holds {what}: " + "; ".join(groups)
                        + ". Give the folder of one study.", root)
