"""Find and read cases in every layout; read and write label maps in the source geometry.

Layouts
-------
``brats2021``
    A folder with ``<id>_t1``, ``<id>_t1ce``, ``<id>_t2``, ``<id>_flair`` and optionally ``<id>_seg``.
``brats2023``
    A folder with ``<id>-t1n``, ``-t1c``, ``-t2w``, ``-t2f`` and optionally ``-seg``.
``msd``
    One 4D NIfTI (channels FLAIR, T1w, T1gd, T2w), its labels in ``../labelsTr/<same name>`` or given.
``files``
    Explicit files per modality (a mapping), or a list of BraTS-named files.

Which file is which sequence is :mod:`.case_files`. All of ``.nii`` and ``.nii.gz``. Every problem
raises :class:`~.errors.CaseError` naming the file.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np

from . import gz
from . import labels as lab
from .case import MODALITIES, Case
from .case_files import (  # noqa: F401 - re-exported: callers import them from io
    MSD_CHANNELS,
    CaseFiles,
    CaseSource,
    PathLike,
    _why,
    classify_file,
    find_case_files,
    is_nifti_name,
    strip_nifti_suffix,
)
from .errors import CaseError, LabelSchemeError, OutputExistsError
from .geometry import Geometry
from .nifti_checks import check_header, data_offset, quiet_nibabel
from .outputs import label_image, output_error, save_nifti, temp_path

#: Geometry agreement tolerance between the files of one case (mm, on affine entries).
AFFINE_ATOL = 1e-3


def _voxels(img: nib.Nifti1Image, path: Path, writeable: bool = True) -> np.ndarray:
    """The scaled voxel array of ``img`` (file order); a ``.nii.gz`` is decompressed in one call
    (:mod:`.gz`) instead of nibabel's streamed reads. ``writeable=False`` lets the array share the
    decompressed buffer (read-only) when no scaling makes a new one."""
    proxy = img.dataobj
    if not (path.name.lower().endswith(".gz") and isinstance(proxy, nib.arrayproxy.ArrayProxy)):
        return np.asanyarray(proxy)
    raw = gz.decompress_file(path)
    shape, dtype, offset = tuple(proxy.shape), np.dtype(proxy.dtype), data_offset(img)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) < offset + nbytes:
        raise EOFError(f"the file decompresses to {len(raw)} bytes; the header needs {offset + nbytes}")
    arr = np.ndarray(shape, dtype, buffer=raw, offset=offset, order=proxy.order)
    data = nib.volumeutils.apply_read_scaling(arr, proxy.slope, proxy.inter)
    if writeable and not data.flags.writeable:
        data = data.copy(order="K")
    return data


def load_nifti(path: PathLike, *, allow_4d: bool = False, allow_empty: bool = False, writeable: bool = True
               ) -> tuple[np.ndarray, Geometry]:
    """Read one NIfTI file, checking everything that would make its data unusable.

    ``writeable=False``: the array may be a read-only view of the decompressed file (for callers
    that convert it anyway), which spares a copy.

    Returns
    -------
    data, geometry
        The voxel array in file order (scaled as NIfTI says) and its geometry.

    Raises
    ------
    CaseError
        Missing file, not NIfTI, a header claiming more data than the file holds (or more voxels than
        any MRI volume has), an affine with a zero column or a zero/negative pixdim, truncated or
        corrupt data, 2D or 5D (or 4D unless ``allow_4d``), NaN/Inf voxels, all-zero volume (unless
        ``allow_empty``).
    """
    p = Path(path)
    if not p.is_file():
        raise CaseError("file not found", p)
    try:
        with quiet_nibabel():
            img = nib.load(str(p))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for foreign files
        raise CaseError(f"not a NIfTI file ({_why(exc)})", p) from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise CaseError(f"not a NIfTI file (read as {type(img).__name__})", p)
    shape = tuple(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 3:
        raise CaseError(f"is {len(shape)}D (shape {tuple(img.shape)}); a 3D volume is needed", p)
    if len(shape) > 4 or (len(shape) == 4 and not allow_4d):
        raise CaseError(f"is {len(shape)}D (shape {tuple(img.shape)}); a 3D volume is needed", p)
    check_header(img, p)  # the header's claims against the file, before any voxel is read
    try:
        data = _voxels(img, p, writeable).reshape(shape)
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise CaseError(f"truncated or corrupt image data ({_why(exc)})", p) from None
    except MemoryError:
        raise CaseError(f"not enough memory to read {'x'.join(map(str, img.shape))} voxels of "
                        f"{img.get_data_dtype()}", p) from None
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise CaseError(f"{bad} voxels are NaN or infinite", p)
    elif data.dtype.kind not in "iub":
        raise CaseError(f"unsupported voxel type {data.dtype}", p)
    if not allow_empty and not np.any(data):
        raise CaseError("every voxel is zero: the volume is empty", p)
    return data, Geometry.from_image(img)


def read_labels(path: PathLike, *, scheme: str | lab.LabelScheme | None = None, layout: str | None = None,
                geometry: Geometry | None = None) -> tuple[np.ndarray, lab.LabelScheme, Geometry]:
    """Read a label map and convert it to internal classes in internal orientation.

    Parameters
    ----------
    scheme
        The file's scheme; detected from values and ``layout`` when None.
    geometry
        When given, the label file must lie on this grid (a case's reference geometry).

    Raises
    ------
    CaseError
        Unreadable file, non-integer values, values of no scheme, an ambiguous scheme, or a grid that
        disagrees with ``geometry``.
    """
    internal, sch, geo, _ = _read_labels(path, scheme, layout, geometry)
    return internal, sch, geo


def _read_labels(path: PathLike, scheme: str | lab.LabelScheme | None, layout: str | None,
                 geometry: Geometry | None, case_id: str | None = None
                 ) -> tuple[np.ndarray, lab.LabelScheme, Geometry, str]:
    """:func:`read_labels`, plus how the scheme was decided (in words)."""
    data, geo = load_nifti(path, allow_empty=True, writeable=False)
    if data.dtype.kind == "f":
        if np.any(data != np.round(data)):
            raise CaseError("label map has non-integer values", path)
        data = data.astype(np.int64)
    if geometry is not None:
        why = geometry.grid_difference(geo, AFFINE_ATOL)
        if why:
            raise CaseError(f"label map does not lie on the images' grid: {why}", path)
    try:
        if scheme is None:
            named = classify_file(path)
            det = lab.detect_scheme(data, layout if layout in lab.SCHEMES else None,
                                    case_id=case_id or (named[1] if named else None))
            if det.scheme is None:
                raise LabelSchemeError(det.reason)
            sch, note = det.scheme, det.reason
        else:
            sch = lab.get_scheme(scheme)
            note = f"scheme {sch.name} given by the caller"
        internal = lab.to_internal(data, sch)
    except LabelSchemeError as exc:
        raise CaseError(str(exc), path) from None
    return geo.to_internal(internal), sch, geo, note


def read_case(source: CaseSource, *, seg: PathLike | None = None,
              scheme: str | lab.LabelScheme | None = None) -> Case:
    """Read a case: four sequences as float32 in internal orientation, plus ground truth if present.

    Parameters
    ----------
    source
        Anything :func:`find_case_files` accepts.
    seg
        An explicit ground-truth file.
    scheme
        The ground truth's label scheme; detected when None.

    Raises
    ------
    CaseError
        Naming the file and the problem (see :func:`load_nifti`), or files whose grids disagree.
    """
    cf = find_case_files(source, seg)
    images: dict[str, np.ndarray] = {}
    geos: dict[str, Geometry] = {}
    if cf.msd_file is not None:
        data, geo = load_nifti(cf.msd_file, allow_4d=True, writeable=False)
        if data.ndim != 4 or data.shape[3] != len(MSD_CHANNELS):
            raise CaseError(f"MSD image must have 4 channels (FLAIR, T1w, T1gd, T2w); shape {data.shape}",
                            cf.msd_file)
        internal = geo.to_internal(data)
        for i, mod in enumerate(MSD_CHANNELS):
            if not np.any(internal[..., i]):
                raise CaseError(f"channel {i} ({mod}) is all zero", cf.msd_file)
            images[mod] = np.ascontiguousarray(internal[..., i], dtype=np.float32)
            geos[mod] = geo
        ref = geo
    else:
        ref = None
        for mod in MODALITIES:
            data, geo = load_nifti(cf.images[mod], writeable=False)
            if ref is None:
                ref = geo
            else:
                why = ref.grid_difference(geo, AFFINE_ATOL)  # same grid in another voxel order is fine
                if why:
                    raise CaseError(f"does not lie on the grid of {cf.images[MODALITIES[0]].name}: {why}",
                                    cf.images[mod])
            image = geo.to_internal(data.astype(np.float32, copy=False))
            images[mod] = image if image.flags.writeable else image.copy()
            geos[mod] = geo
    assert ref is not None
    case = Case(cf.case_id, {m: images[m] for m in MODALITIES}, ref, cf.layout,
                {m: cf.images[m] for m in MODALITIES}, geos)
    if cf.seg is not None:
        gt, sch, _, note = _read_labels(cf.seg, scheme, cf.layout, ref, cf.case_id)
        case.ground_truth, case.gt_scheme, case.gt_path, case.gt_note = gt, sch, cf.seg, note
    return case


def find_cases(roots: Iterable[PathLike]) -> list[Path]:
    """Expand folders of cases into case sources: a case folder itself, its sub-folders that are cases,
    or the 4D files of an MSD ``imagesTr`` folder. Sorted, duplicates removed."""
    out: list[Path] = []
    for root in roots:
        r = Path(root)
        if r.is_file():
            out.append(r)
            continue
        if not r.is_dir():
            raise CaseError("no such file or folder", r)
        files = [p for p in r.iterdir() if p.is_file() and is_nifti_name(p)]
        if any(classify_file(p) for p in files):
            out.append(r)
            continue
        subs = sorted(p for p in r.iterdir() if p.is_dir())
        for s in subs:
            if any(classify_file(p) for p in s.iterdir() if p.is_file() and is_nifti_name(p)):
                out.append(s)
            elif s.name == "imagesTr":
                out.extend(sorted(p for p in s.iterdir() if is_nifti_name(p)))
        if not subs and files:
            out.extend(sorted(files))
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def write_labels(labels: np.ndarray, target: Case | Geometry, path: PathLike, *,
                 scheme: str | lab.LabelScheme = "brats2021", overwrite: bool = False,
                 protected: Iterable[PathLike] = ()) -> Path:
    """Write an internal-class label map into the source geometry, atomically.

    The file gets the source's shape, voxel order, affine, qform/sform with their codes and units;
    voxels are uint8 in ``scheme``.

    Parameters
    ----------
    labels
        Internal classes in internal ``(z, y, x)`` order, of the case's internal shape.
    target
        The case (its reference geometry; its input files are protected) or a geometry.
    path
        Output ``.nii`` or ``.nii.gz``.
    overwrite
        Replace an existing output (never an input of the case or one of ``protected``).

    Raises
    ------
    OutputExistsError
        The path is an input, or exists and ``overwrite`` is False.
    CaseError, LabelSchemeError
        Wrong shape, or a class the scheme cannot store.
    """
    out = Path(path)
    if not is_nifti_name(out):
        raise CaseError("output name must end in .nii or .nii.gz", out)
    inputs = {Path(p).resolve() for p in protected}
    if isinstance(target, Case):
        inputs |= target.input_paths
    if out.resolve() in inputs:
        raise OutputExistsError(f"{out}: refusing to write over an input file of the case")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: file exists (ask to overwrite)")
    try:
        img = label_image(labels, target, scheme)
    except CaseError as exc:
        raise CaseError(str(exc), out) from None
    return save_image(img, out, overwrite=overwrite)


def save_image(img: nib.Nifti1Image, path: PathLike, *, overwrite: bool = False,
               protected: Iterable[PathLike] = ()) -> Path:
    """Save a NIfTI image atomically: to a temporary file in the same folder, then rename.

    Nothing is left behind when saving fails (the temporary file is removed), and a reader never
    sees a half-written file.

    Raises
    ------
    OutputExistsError
        The path is one of ``protected``, or exists and ``overwrite`` is False.
    CaseError
        The name does not end in ``.nii`` or ``.nii.gz``.
    OutputError
        The file cannot be written (permission, full disk, ...), naming ``path``.
    """
    out = Path(path)
    if not is_nifti_name(out):
        raise CaseError("output name must end in .nii or .nii.gz", out)
    if out.resolve() in {Path(p).resolve() for p in protected}:
        raise OutputExistsError(f"{out}: refusing to write over an input file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: file exists (ask to overwrite)")
    # A fresh hidden name with this process's pid (not mkstemp: its 0600 mode would stick to the
    # output after the rename); a stale one is recognised and removed by outputs.clean_stale_parts.
    tmp = temp_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_nifti(img, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(exc, out) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
