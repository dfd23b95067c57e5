"""Planning a cohort run: one output set per case, no two cases on the same file, and the skip rule.

Used by ``brats-seg segment``. Nothing here reads voxels: it works out, before any compute, which
file each case writes, whether two cases would write the same file, and whether a case is already
done (its outputs are this tool's, for this case, from these very input files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BratsSegError, CaseError
from .io import CaseFiles, find_case_files, is_nifti_name, strip_nifti_suffix
from .outputs import classify_existing, sources_identity


def sidecar(seg_path: Path, suffix: str) -> Path:
    """``OUT/X_seg.nii.gz`` -> ``OUT/X_<suffix>.nii.gz`` (``pred.nii.gz`` -> ``pred_<suffix>.nii.gz``)."""
    stem = strip_nifti_suffix(seg_path)
    stem = stem[: -len("_seg")] if stem.endswith("_seg") else stem
    return seg_path.with_name(f"{stem}_{suffix}.nii.gz")


@dataclass
class Job:
    """One case of a run and the files it writes.

    Attributes
    ----------
    source
        The case as given (folder or file).
    case_id
        Its id (``<id>`` of ``<id>_t1.nii.gz``), or the file stem when it cannot be found.
    out
        The label map to write; the commit mark of the set.
    extras
        Role (``prob_WT``, ..., ``uncertainty``) -> side map to write with it.
    files
        Which file is which sequence, or None when the case cannot be used (``error`` says why).
    """

    source: Path
    case_id: str
    out: Path
    extras: dict[str, Path] = field(default_factory=dict)
    files: CaseFiles | None = None
    error: str | None = None
    _identity: dict | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """How lines name the case: its folder or file name, with the id when that differs."""
        name = self.source.name
        return name if strip_nifti_suffix(name) == self.case_id else f"{name} ({self.case_id})"

    @property
    def paths(self) -> list[Path]:
        """Every file of the set, the label map first."""
        return [self.out, *self.extras.values()]

    @property
    def inputs(self) -> set[Path]:
        """The case's files (images and ground truth), resolved: never written over."""
        if self.files is None:
            return set()
        found = [*self.files.images.values()] + ([self.files.seg] if self.files.seg else [])
        return {Path(p).resolve() for p in found}

    def identity(self) -> dict:
        """Role -> name, size and SHA-256 of each input image (computed once)."""
        if self._identity is None:
            assert self.files is not None
            self._identity = sources_identity(self.files.images)
        return self._identity


def _disambiguate(group: list[Job], root: Path) -> None:
    """Give jobs with the same id outputs in sub-folders named by their relative path, or refuse."""
    dirs = [(j.source if j.source.is_dir() else j.source.parent).resolve() for j in group]
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    rels = [d.relative_to(common) for d in dirs]
    listing = ", ".join(str(j.source) for j in group)
    if any(str(r) == "." for r in rels) or len({str(r).casefold() for r in rels}) < len(rels):
        raise CaseError(f"{len(group)} cases have the same id {group[0].case_id!r} ({listing}) and their "
                        "folders cannot tell their outputs apart; rename one or segment them separately")
    for j, rel in zip(group, rels):
        j.out = root / rel / j.out.name
        j.extras = {r: root / rel / p.name for r, p in j.extras.items()}


def plan_cohort(cases: Sequence[Path], out: Path, roles: Iterable[str] = ()) -> tuple[list[Job], list[str]]:
    """The jobs of a run: each case's output set, with colliding ids told apart.

    Parameters
    ----------
    cases
        Case sources (folders or files), as :func:`~.io.find_cases` returns them.
    out
        ``.nii``/``.nii.gz`` for one case, else the output folder (``<id>_seg.nii.gz`` per case).
    roles
        The side maps to write with each label map (``prob_WT``, ..., ``uncertainty``).

    Returns
    -------
    jobs, notes
        The jobs in the order of ``cases``, and lines to tell the user (how collisions were resolved).

    Raises
    ------
    CaseError
        Several cases for one output file; cases with the same id that no relative path separates
        (both folders are named).
    """
    roles = list(roles)
    single = is_nifti_name(out)
    if single and len(cases) != 1:
        raise CaseError(f"{len(cases)} cases need a folder for -o, not a file", out)
    jobs = []
    for c in cases:
        try:
            files, error = find_case_files(c), None
            cid = files.case_id
        except (BratsSegError, OSError) as exc:
            files, error, cid = None, str(exc), strip_nifti_suffix(c)
        target = out if single else out / f"{cid}_seg.nii.gz"
        jobs.append(Job(Path(c), cid, target, {r: sidecar(target, r) for r in roles}, files, error))
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        groups.setdefault(j.case_id.casefold(), []).append(j)
    notes = []
    for group in groups.values():
        if len(group) > 1 and not single:
            _disambiguate(group, out)
            notes.append(f"note  {len(group)} cases have the id {group[0].case_id!r}: their outputs go to "
                         + ", ".join(str(j.out) for j in group))
    return jobs, notes


def decide(job: Job, protected: set[Path], overwrite: bool) -> tuple[str, str]:
    """What to do with a job: ``("todo" | "skip" | "keep" | "fail", why)``.

    ``skip`` only when the label map and every side map asked for are this tool's output for this
    case, from the same input files, and of one set (written together). An input of any case of
    the run is never written over (``fail``, even with ``overwrite``); a result of another case, or
    one from other input files, is ``fail`` unless ``overwrite``; a file this tool did not write is
    left untouched (``keep``) unless ``overwrite``.
    """
    if job.error is not None:
        return "fail", job.error
    for p in job.paths:
        if p.resolve() in protected:
            return "fail", f"{p} is an input file of this run; refusing to write over it (choose another -o)"
    if overwrite:
        return "todo", ""
    states = {p: classify_existing(p, job.case_id, job.identity()) for p in job.paths}
    for p, st in states.items():
        if st.state in ("other-case", "other-sources"):
            return "fail", f"{p} exists and {st.detail}; choose another -o, or --overwrite to replace it"
    foreign = [p for p, st in states.items() if st.state == "foreign"]
    if foreign:
        return "keep", (f"{foreign[0]} exists but was not written by brats-seg for this case; left untouched "
                        "(use --overwrite to replace it)")
    seg = states[job.out]
    if seg.state == "ours" and all(st.state == "ours" and st.set_id == seg.set_id for st in states.values()):
        return "skip", f"{job.out} exists (use --overwrite to replace)"
    return "todo", ""
