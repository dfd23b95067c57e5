"""Results back onto the source series: a DICOM Segmentation object (highdicom) for PACS.

:func:`write_dicom_seg` takes a label map on the grid of a DICOM series (internal classes 1-3, see
:mod:`napari_brats_seg.core.labels`; on the series' own grid, e.g. from
:func:`.prepare.labels_to_native`) and writes a binary DICOM-SEG that references that series'
instances frame for frame: one segment per class present, with SNOMED CT codes, the plugin's
colours (CIELab) and the algorithm's identification (model name, package version, checkpoint hash).
Patient and study attributes are copied from the source images by highdicom, as the standard
requires for the object to file with its study; nothing else is added.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..labels import CLASS_COLOURS
from .dicom import SeriesInfo
from .volume import slice_order

#: SNOMED CT property types of the internal classes (category: morphologically abnormal structure).
_SCT_TYPES = {1: ("6574001", "Necrosis"), 2: ("79654002", "Edema"), 3: ("108369006", "Neoplasm")}
_LABELS = {1: "necrotic core", 2: "edema", 3: "enhancing tumour"}


def _segment(number: int, cls: int, algorithm: Any) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    value, meaning = _SCT_TYPES[cls]
    r, g, b = CLASS_COLOURS[cls][:3]
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=_LABELS[cls],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=Code(value, "SCT", meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(int(r * 255), int(g * 255), int(b * 255))
        if hasattr(hd.color.CIELabColor, "from_rgb") else None)


def write_dicom_seg(labels: np.ndarray, series: SeriesInfo, path: str | os.PathLike, *, model_name: str,
                    model_hash: str | None = None, manually_corrected: bool = False) -> Path:
    """Write ``labels`` (``(column, row, slice)`` on ``series``' grid, slices in :func:`slice_order`) as DICOM-SEG.

    Raises
    ------
    CaseError
        When the label map's shape is not the series' grid, or it holds no tumour class.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from ... import __version__

    order = slice_order(series)
    expected = (series.columns, series.rows, len(order))
    if tuple(labels.shape) != expected:
        raise CaseError(f"the label map has shape {tuple(labels.shape)}, the series grid is {expected}", path)
    classes = [c for c in (1, 2, 3) if np.any(labels == c)]
    if not classes:
        raise CaseError("the label map holds no tumour class: nothing to write as DICOM-SEG", path)
    sources = [pydicom.dcmread(str(series.frames[i].path)) for i in order]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name[:64], family=codes.cid7162.ArtificialIntelligence,
        version=f"napari-brats-seg {__version__}" + (f", weights {model_hash[:16]}" if model_hash else ""))
    frames = labels.transpose(2, 1, 0)  # (slice, row, column), the sources' order
    masks = np.stack([frames == c for c in classes], axis=-1)
    with warnings.catch_warnings():  # highdicom comments on the copied patient name: keep it out of logs
        warnings.simplefilter("ignore", UserWarning)
        seg = _build(hd, sources, masks, classes, algorithm, series, model_name, manually_corrected)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    seg.save_as(str(tmp))
    os.replace(tmp, out)
    return out


def _build(hd: Any, sources: list, masks: np.ndarray, classes: list[int], algorithm: Any, series: SeriesInfo,
           model_name: str, manually_corrected: bool) -> Any:
    from ... import __version__

    return hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(i + 1, c, algorithm) for i, c in enumerate(classes)],
        series_instance_uid=hd.UID(), series_number=int(series.number or 0) + 9000, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="napari-brats-seg", manufacturer_model_name=model_name[:64],
        software_versions=__version__, device_serial_number="none",
        content_description=("tumour labels, corrected by hand" if manually_corrected
                             else "tumour labels, automatic")[:64],
        content_label="TUMOUR", omit_empty_frames=False)


def export_prepared(case_dir: str | os.PathLike, labels: Any, *, native: str | os.PathLike | None = None,
                    dicom_seg: str | os.PathLike | None = None, model_name: str = "unknown",
                    model_hash: str | None = None, native_scheme: str = "brats2021") -> dict[str, Path]:
    """Bring a prepared case's label map back onto its source T1ce: NIfTI on the native grid and/or DICOM-SEG.

    Parameters
    ----------
    case_dir
        A case folder written by ``brats-seg prepare`` (it holds ``prepare.json``).
    labels
        The label map on the prepared grid as a nibabel image holding internal classes 0-4.
    native, dicom_seg
        Output paths (either may be None).
    native_scheme
        Label scheme of the native NIfTI (the DICOM-SEG names its segments instead).

    Raises
    ------
    CaseError
        When the folder is not a prepared case, the label map is not on its grid, or (for
        DICOM-SEG) the case came from NIfTI files or its source series has moved.
    """
    import nibabel as nib

    from .prepare import labels_to_native, read_record

    record = read_record(case_dir)
    if record is None:
        raise CaseError("not a prepared case (no prepare.json): --native and --dicom-seg need "
                        "a case written by brats-seg prepare", case_dir)
    grid = np.array(record["grid"]["affine_ras"])
    if tuple(labels.shape) != tuple(record["grid"]["shape"]) or not np.allclose(labels.affine, grid, atol=1e-4):
        raise CaseError("the label map is not on the prepared case's grid", case_dir)
    on_native = labels_to_native(labels, record)
    written: dict[str, Path] = {}
    if native is not None:
        from ..labels import from_internal

        out = Path(native)
        tmp = out.with_name(f".{out.name}.part{''.join(out.suffixes)}")
        stored = from_internal(np.asarray(on_native.dataobj, np.uint8), native_scheme).astype(np.uint8)
        img = nib.Nifti1Image(stored, on_native.affine)
        img.set_qform(on_native.affine, 1)
        img.set_sform(on_native.affine, 1)
        nib.save(img, str(tmp))
        os.replace(tmp, out)
        written["native"] = out
    if dicom_seg is not None:
        series = source_series(record, "t1ce")
        written["dicom_seg"] = write_dicom_seg(np.asarray(on_native.dataobj, np.uint8), series, dicom_seg,
                                               model_name=model_name, model_hash=model_hash)
    return written


def read_dicom_seg(path: str | os.PathLike, series: SeriesInfo) -> np.ndarray:
    """A DICOM-SEG written for ``series`` as a label map ``(column, row, slice)`` (internal classes)."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    order = slice_order(series)
    uids = [series.frames[i].sop_uid for i in order]
    numbers = seg.get_segment_numbers()
    classes = {n: {v: k for k, v in _LABELS.items()}.get(seg.get_segment_description(n).segment_label, 0)
               for n in numbers}
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers, assert_missing_frames_are_empty=True)
    out = np.zeros(pixels.shape[:3], np.uint8)
    for i, n in enumerate(numbers):
        out[pixels[..., i] > 0] = classes[n]
    return out.transpose(2, 1, 0)


def source_series(record: dict[str, Any], role: str = "t1ce") -> SeriesInfo:
    """The DICOM series a prepared case's ``role`` came from, found again from its record.

    Raises
    ------
    CaseError
        When the case was prepared from NIfTI files, or the series' files are no longer where
        the record says (the message names the folder).
    """
    from .dicom import discover

    seq = record["sequences"][role]
    if "series_uid" not in seq or "study_root" not in seq:
        raise CaseError(f"the {role.upper()} of this case came from a NIfTI file, not a DICOM series: "
                        "no DICOM-SEG can reference it")
    root = Path(seq["study_root"])
    folder = root / Path(seq["files"][0]).parent
    if not folder.is_dir():
        raise CaseError(f"the source series {seq['series_number']} is no longer there", folder)
    return discover(folder).find(seq["series_uid"])


__all__ = ["read_dicom_seg", "source_series", "write_dicom_seg"]
