"""Which file of a case is which sequence: BraTS 2018-2021 and 2023+ names, MSD 4D files, lists and
mappings of files (the discovery half of :mod:`napari_brats_seg.core.io`, which re-exports it).

Every problem raises :class:`~.errors.CaseError` naming the folder or file and saying which
sequences were found, missing or duplicated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import nibabel as nib

from .case import MODALITIES, canonical_modality
from .errors import CaseError

PathLike = str | os.PathLike
CaseSource = Union[PathLike, Sequence[PathLike], Mapping[str, PathLike], "CaseFiles"]

#: MSD Task01 channel order of the 4D images.
MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")
_PATTERNS = {
    "brats2021": re.compile(r"^(?P<id>.+)_(?P<mod>t1|t1ce|t2|flair|seg)$", re.I),
    "brats2023": re.compile(r"^(?P<id>.+)-(?P<mod>t1n|t1c|t2w|t2f|seg)$", re.I),
}


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
