"""A DICOM series as a volume with its exact geometry (oblique kept), or a clear error.

The slices are ordered along the normal of their common orientation; the affine comes from the
first slice's ImagePositionPatient, the ImageOrientationPatient cosines, PixelSpacing and the
spacing between slice positions. Nothing is resampled: an oblique series stays oblique, exactly
as the scanner wrote it. The checks that make a volume trustworthy come first, each naming the
series: one orientation and one size for all slices, one pixel spacing, no repeated position, no
missing slice and even spacing (within 1 % of the slice spacing, or 0.01 mm).

Array and affine follow NIfTI/nibabel: data ``[column, row, slice]``, affine to RAS+ mm, the same
convention dcm2niix and SimpleITK's writer produce, so the rest of the package reads a series the
way it reads a NIfTI file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CaseError
from ..geometry import LPS_FROM_RAS
from .dicom import SeriesInfo

#: A position step may differ from the median step by this fraction (or 0.01 mm) before the
#: spacing counts as uneven.
SPACING_TOLERANCE = 0.01


def _where(series: SeriesInfo) -> str:
    return f"series {series.number} ({series.description or 'no description'})"


def slice_order(series: SeriesInfo) -> np.ndarray:
    """The frames' indices sorted along the slice normal, after the geometry checks.

    Raises
    ------
    CaseError
        Mixed orientations, sizes or pixel spacings; repeated positions; missing slices; uneven
        spacing. The message names the series and the slice positions concerned.
    """
    if not series.frames:
        raise CaseError(f"{_where(series)} has no slice position/orientation tags", series.files[0])
    if len(series.orientations) != 1:
        raise CaseError(f"{_where(series)} mixes {len(series.orientations)} slice orientations "
                        "(a localizer or a multi-plane series): not one volume", series.files[0])
    spacings = {tuple(round(v, 4) for v in f.pixel_spacing) for f in series.frames}
    if len(spacings) != 1:
        raise CaseError(f"{_where(series)} mixes pixel spacings {sorted(spacings)}", series.files[0])
    pos = series.slice_positions()
    order = np.argsort(pos, kind="stable")
    if len(order) < 2:
        return order
    steps = np.diff(pos[order])
    if np.any(steps < 1e-3):
        k = int(np.argmax(steps < 1e-3))
        raise CaseError(f"{_where(series)} has two slices at the same position ({pos[order][k]:.2f} mm along "
                        "the normal): several echoes, phases or repeats in one series are not one volume",
                        series.files[0])
    median = float(np.median(steps))
    tol = max(SPACING_TOLERANCE * median, 0.01)
    bad = np.flatnonzero(np.abs(steps - median) > tol)
    if bad.size:
        k = int(bad[0])
        a, b = pos[order][k], pos[order][k + 1]
        ratio = steps[k] / median
        if abs(ratio - round(ratio)) < 0.1 and round(ratio) >= 2:
            what = f"{int(round(ratio)) - 1} slice(s) missing between {a:.2f} and {b:.2f} mm"
        else:
            what = f"uneven slice spacing: {steps[k]:.3f} mm between {a:.2f} and {b:.2f} mm, {median:.3f} mm elsewhere"
        raise CaseError(f"{_where(series)}: {what} ({len(order)} slices found)", series.files[0])
    return order


def series_affine(series: SeriesInfo, order: np.ndarray | None = None) -> np.ndarray:
    """The 4x4 affine from voxel ``(column, row, slice)`` to RAS+ mm (nibabel's convention)."""
    order = slice_order(series) if order is None else order
    first = series.frames[int(order[0])]
    o = np.asarray(first.orientation, float)
    row_dir, col_dir = o[:3], o[3:]  # direction along a row (column index grows), along a column
    dr, dc = first.pixel_spacing  # mm between rows, mm between columns
    if len(order) > 1:
        last = series.frames[int(order[-1])]
        step = (np.asarray(last.position) - np.asarray(first.position)) / (len(order) - 1)
    else:
        step = np.cross(row_dir, col_dir) * float(series.slice_thickness or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = step
    lps[:3, 3] = first.position
    lps[:3] = LPS_FROM_RAS @ lps[:3]  # the same flip takes LPS to RAS
    return lps


def _pixels(series: SeriesInfo) -> dict[tuple[str, int], np.ndarray]:
    import pydicom

    out: dict[tuple[str, int], np.ndarray] = {}
    for path in series.files:
        try:
            ds = pydicom.dcmread(str(path))
            arr = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for undecodable pixels
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) if "ds" in locals() else None
            name = getattr(syntax, "name", syntax)
            raise CaseError(f"{_where(series)}: cannot decode the pixels"
                            + (f" (transfer syntax {name}: install a decoder such as pylibjpeg, or convert "
                               "the study to uncompressed DICOM)" if syntax else "")
                            + f": {type(exc).__name__}: {exc}", path) from None
        frames = np.asarray(arr, np.float32)
        frames = frames if frames.ndim == 3 else frames[None]
        for i, frame in enumerate(frames):
            slope, intercept = _rescale(ds, i)
            out[(str(path), i)] = frame * slope + intercept if (slope, intercept) != (1.0, 0.0) else frame
    return out


def _rescale(ds: Any, frame: int) -> tuple[float, float]:
    """RescaleSlope/Intercept of a frame: the dataset's, or the (per-frame or shared) functional group's."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    per, shared = ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")
    groups = ([per[frame]] if per and len(per) > frame else []) + ([shared[0]] if shared else [])
    for group in groups:
        if "PixelValueTransformationSequence" in group:
            item = group.PixelValueTransformationSequence[0]
            return float(item.get("RescaleSlope", 1) or 1), float(item.get("RescaleIntercept", 0) or 0)
    return 1.0, 0.0


def read_series(series: SeriesInfo) -> Any:
    """The series as a ``nibabel.Nifti1Image`` (float32, RAS+ affine; qform and sform set).

    Raises
    ------
    CaseError
        For every geometry problem of :func:`slice_order`, rows/columns that differ between
        files, and pixels that cannot be decoded (the transfer syntax is named).
    """
    import nibabel as nib

    order = slice_order(series)
    pixels = _pixels(series)
    shapes = {a.shape for a in pixels.values()}
    if len(shapes) != 1:
        raise CaseError(f"{_where(series)} mixes image sizes {sorted(shapes)}", series.files[0])
    stack = [pixels[(str(series.frames[i].path), series.frames[i].frame)] for i in order]
    data = np.stack(stack, axis=-1).transpose(1, 0, 2)  # (row, col, slice) -> (col, row, slice)
    affine = series_affine(series, order)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    img.header.set_xyzt_units("mm", "sec")
    return img
