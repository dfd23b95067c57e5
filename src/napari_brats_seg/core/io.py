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

All of ``.nii`` and ``.nii.gz``. Every problem raises :class:`~.errors.CaseError` naming the file.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from . import gz
from . import labels as lab
from .case import MODALITIES, Case, canonical_modality
from .errors import CaseError, LabelSchemeError, OutputExistsError
from .geometry import Geometry
from .nifti_checks import check_header, data_offset, quiet_nibabel
from .outputs import label_image, output_error, save_nifti, temp_path

PathLike = str | os.PathLike
CaseSource = Union[PathLike, Sequence[PathLike], Mapping[str, PathLike], "CaseFiles"]

#: MSD Task01 channel order of the 4D images.
MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")
_PATTERNS = {
    "brats2021": re.compile(r"^(?P<id>.+)_(?P<mod>t1|t1ce|t2|flair|seg)$", re.I),
    "brats2023": re.compile(r"^(?P<id>.+)-(?P<mod>t1n|t1c|t2w|t2f|seg)$", re.I),
}
#: Geometry agreement tolerance between the files of one case (mm, on affine entries).
AFFINE_ATOL = 1e-3


def strip_nifti_suffix(path: PathLike) -> str:
    """``a/b_t1.nii.gz`` -> ``b_t1``."""
    name = Path(path).name
    for suf in (".nii.gz", ".nii"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def is_nifti_name(path: PathLike) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz``."""
    return Path(path).name.lower().endswith((".nii", ".nii.gz"))


def classify_file(path: PathLike) -> tuple[str, str, str] | None:
    """``(layout, case_id, role)`` of a BraTS-named file, role a canonical modality or ``seg``."""
    stem = strip_nifti_suffix(path)
    for layout, pat in _PATTERNS.items():
        m = pat.match(stem)
        if m:
            mod = m.group("mod").lower()
            return layout, m.group("id"), ("seg" if mod == "seg" else canonical_modality(mod))
    return None


@dataclass
class CaseFiles:
    """Which file is which sequence of one case, before anything is read."""

    case_id: str
    layout: str
    images: dict[str, Path] = field(default_factory=dict)
    seg: Path | None = None
    msd_file: Path | None = None

    def describe(self) -> dict:
        """JSON-friendly mapping of roles to files."""
        files = {m: str(p) for m, p in self.images.items()}
        return {"case_id": self.case_id, "layout": self.layout, "images": files,
                "seg": str(self.seg) if self.seg else None}


def _why(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (nibabel's messages may span several)."""
    return f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"


def _nifti_shape(path: Path) -> tuple[int, ...]:
    try:
        return tuple(nib.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - any failure here is "not a readable NIfTI"
        raise CaseError(f"not a readable NIfTI file ({_why(exc)})", path) from None


def _from_named_files(paths: Iterable[Path], where: PathLike) -> CaseFiles:
    found: dict[str, list[Path]] = {}
    layouts, ids = set(), set()
    for p in paths:
        c = classify_file(p)
        if c is None:
            continue
        layouts.add(c[0])
        ids.add(c[1])
        found.setdefault(c[2], []).append(p)
    if not found:
        raise CaseError("no BraTS-named NIfTI files (<id>_t1/_t1ce/_t2/_flair or <id>-t1n/-t1c/-t2w/-t2f)", where)
    dups = {r: ps for r, ps in found.items() if len(ps) > 1}
    if dups:
        listing = "; ".join(f"{r}: {', '.join(p.name for p in ps)}" for r, ps in dups.items())
        raise CaseError(f"more than one file for the same sequence ({listing})", where)
    missing = [m for m in MODALITIES if m not in found]
    if missing:
        have = ", ".join(f"{r}={ps[0].name}" for r, ps in found.items())
        raise CaseError(f"missing sequence(s) {', '.join(missing)}; found {have}", where)
    layout = layouts.pop() if len(layouts) == 1 else "files"
    case_id = ids.pop() if len(ids) == 1 else Path(where).name
    seg = found.pop("seg", [None])[0]
    return CaseFiles(case_id, layout, {m: found[m][0] for m in MODALITIES}, seg)


def _msd_files(path: Path, seg: PathLike | None) -> CaseFiles:
    label = Path(seg) if seg is not None else None
    if label is None:
        cand = path.parent.parent / "labelsTr" / path.name
        label = cand if cand.exists() and cand.resolve() != path.resolve() else None
    return CaseFiles(strip_nifti_suffix(path), "msd", dict.fromkeys(MSD_CHANNELS, path), label, msd_file=path)


def find_case_files(source: CaseSource, seg: PathLike | None = None) -> CaseFiles:
    """Work out which file is which sequence, from a folder, a 4D file, a list or a mapping.

    Parameters
    ----------
    source
        A case folder, an MSD 4D file, one file of a BraTS-named case (its folder is used), a list of
        BraTS-named files, or a mapping ``{modality: path}`` (any modality spelling, plus ``seg``).
    seg
        An explicit ground-truth file; overrides the one found.

    Raises
    ------
    CaseError
        Naming the folder or file and saying which sequences were found, missing or duplicated.
    """
    if isinstance(source, CaseFiles):
        return source
    if isinstance(source, Mapping):
        images: dict[str, Path] = {}
        gt = None
        for key, p in source.items():
            if key.lower() in ("seg", "label", "labels", "gt"):
                gt = Path(p)
                continue
            try:
                mod = canonical_modality(key)
            except KeyError as exc:
                raise CaseError(str(exc.args[0]), p) from None
            if mod in images:
                raise CaseError(f"sequence {mod} given twice ({images[mod].name} and {Path(p).name})", p)
            images[mod] = Path(p)
        missing = [m for m in MODALITIES if m not in images]
        if missing:
            raise CaseError(f"missing sequence(s) {', '.join(missing)}; given {', '.join(images) or 'none'}")
        first = images[MODALITIES[0]]
        cls = classify_file(first)
        cf = CaseFiles(cls[1] if cls else strip_nifti_suffix(first), "files", images, gt)
    elif isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        if len(paths) == 1:
            return find_case_files(paths[0], seg)
        cf = _from_named_files(paths, paths[0].parent if paths else ".")
        cf.layout = "files"
    else:
        path = Path(source)
        if not path.exists():
            raise CaseError("no such file or folder", path)
        if path.is_dir():
            niftis = sorted(p for p in path.iterdir() if p.is_file() and is_nifti_name(p))
            if not niftis:
                raise CaseError("folder holds no .nii or .nii.gz files", path)
            if any(classify_file(p) for p in niftis):
                cf = _from_named_files(niftis, path)
            else:
                four_d = [p for p in niftis if len(_nifti_shape(p)) == 4 and _nifti_shape(p)[3] == 4]
                if len(four_d) != 1:
                    raise CaseError("no BraTS-named files and no single 4-channel MSD image in the folder", path)
                others = [p for p in niftis if p != four_d[0] and len(_nifti_shape(p)) == 3]
                cf = _msd_files(four_d[0], seg if seg is not None else (others[0] if len(others) == 1 else None))
        else:
            shape = _nifti_shape(path)
            if len(shape) == 4 and shape[3] == 4:
                cf = _msd_files(path, seg)
            elif classify_file(path):
                cf = find_case_files(path.parent, seg)
            else:
                raise CaseError(
                    f"a single {len(shape)}D file with shape {shape} is neither an MSD 4-channel image nor "
                    "a BraTS-named sequence; give the four sequences", path)
    if seg is not None:
        cf.seg = Path(seg)
    return cf


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
