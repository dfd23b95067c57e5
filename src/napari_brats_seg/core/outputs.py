"""Writing a case's outputs safely: all of them or none, with a record of whose they are.

A case's outputs (label map, probability and uncertainty maps) form a *set*. :class:`OutputSet`
writes every member to a hidden temporary file beside its target (``.<name>.<pid>-<hex>.part.nii.gz``),
then renames them into place, the label map last: the label map is the commit mark, so a set whose
label map exists is complete. Every member carries a *provenance* record in a NIfTI extension (the
tool, the case id, the identity of its source files and the id of the set), which is how a re-run
tells its own finished work from a file that merely exists: an input image, another case's result or
a stranger's file is never taken for "already done". Temporary files of a process that is no longer
running are stale and :func:`clean_stale_parts` removes them.

Write failures become :class:`~.errors.OutputError` naming the user's path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from . import gz
from . import labels as lab
from .case import Case
from .errors import CaseError, OutputError, OutputExistsError
from .geometry import Geometry

TOOL = "napari-brats-seg"
#: NIfTI extension code of the provenance record (6 = "comment": other tools show or ignore it).
EXT_CODE = 6
_MAGIC = b"napari-brats-seg provenance "


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"


def temp_path(out: Path) -> Path:
    """The hidden temporary name of ``out`` for this process (its pid marks whose it is)."""
    return out.parent / f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.part{_suffix(out)}"


def output_error(exc: OSError, path: Path) -> OutputError:
    """A write failure as an :class:`OutputError` naming ``path`` (the user's file, not a temporary)."""
    if isinstance(exc, OutputError):
        return exc
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
            room = f"; {free / 1e6:.1f} MB free there"
        except OSError:
            room = ""
        why = exc.strerror or "No space left on device"
        return OutputError(f"cannot write: {why} (the disk is full{room}; no partial file was kept: "
                           "free space and run again)", path)
    return OutputError(f"cannot write: {exc.strerror or exc.__class__.__name__}", path)


def check_writable(folder: Path) -> None:
    """Prove a file can be created in ``folder`` (before any compute), leaving nothing behind.

    A folder that does not exist yet is not created: its nearest existing parent must accept a
    new entry.

    Raises
    ------
    OutputError
        Naming the folder: it is a file, or it (or the parent it would be made in) refuses new files.
    """
    folder = Path(folder)
    probe_in = folder
    while not probe_in.exists() and probe_in.parent != probe_in:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise OutputError(f"cannot be created: {probe_in} is not a folder", folder)
    probe = probe_in / f".brats-seg-probe.{os.getpid()}-{uuid.uuid4().hex[:12]}.part"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise output_error(exc, folder) from None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process has not started writing these files yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_parts(outputs: Iterable[Path]) -> list[Path]:
    """Remove this tool's temporary files of ``outputs`` left by a process that is gone.

    A temporary file of a running process (another rank, another run) is left alone; one without a
    pid (older versions) or whose process is gone is removed. Returns the files removed.
    """
    removed = []
    for out in outputs:
        out = Path(out)
        if not out.parent.is_dir():
            continue
        head = f".{out.name}."
        for p in out.parent.iterdir():
            name = p.name
            if not (name.startswith(head) and name.endswith(".part" + _suffix(out))):
                continue
            token = name[len(head): -len(".part" + _suffix(out))]
            pid_text = token.split("-", 1)[0] if "-" in token else ""
            if pid_text.isdigit() and _pid_alive(int(pid_text)):
                continue
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def file_identity(path: Path) -> dict:
    """Name, size and SHA-256 of a source file (what makes a result belong to its input)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"name": Path(path).name, "size": Path(path).stat().st_size, "sha256": h.hexdigest()}


def sources_identity(sources: Mapping[str, Path]) -> dict[str, dict]:
    """:func:`file_identity` of each role's source file (a file used for several roles is hashed once)."""
    cache: dict[Path, dict] = {}
    return {role: cache.setdefault(Path(p).resolve(), file_identity(Path(p))) for role, p in sources.items()}


def _content(ext: nib.nifti1.Nifti1Extension) -> bytes:
    content = ext.get_content()
    return content if isinstance(content, bytes) else b""


def _is_ours(ext: nib.nifti1.Nifti1Extension) -> bool:
    return ext.get_code() == EXT_CODE and _content(ext).startswith(_MAGIC)


def read_provenance(path: Path) -> dict | None:
    """The provenance record of a file this tool wrote, or None (absent, foreign or unreadable)."""
    try:
        exts = nib.load(str(path)).header.extensions
    except Exception:  # noqa: BLE001 - anything unreadable is simply not ours
        return None
    for ext in exts:
        if _is_ours(ext):
            try:
                rec = json.loads(_content(ext)[len(_MAGIC):].rstrip(b"\0").decode())
            except (ValueError, UnicodeDecodeError):
                return None
            return rec if isinstance(rec, dict) and rec.get("tool") == TOOL else None
    return None


@dataclass(frozen=True)
class Existing:
    """What an existing output file is, for the skip rule (see :func:`classify_existing`)."""

    state: str  #: "missing", "ours", "other-case", "other-sources" or "foreign"
    detail: str = ""
    set_id: str | None = None


def classify_existing(path: Path, case_id: str, sources: Mapping[str, dict]) -> Existing:
    """Whether ``path`` is this tool's output for this case from these source files."""
    if not path.exists():
        return Existing("missing")
    rec = read_provenance(path)
    if rec is None:
        return Existing("foreign", "it was not written by brats-seg for this case")
    if rec.get("case_id") != case_id:
        where = rec.get("source_folder") or "?"
        return Existing("other-case", f"it holds brats-seg's result for case {rec.get('case_id')!r} "
                                      f"(from {where}), not for {case_id!r}")
    theirs = rec.get("sources") or {}
    changed = sorted(r for r in sources if (theirs.get(r) or {}).get("sha256") != sources[r]["sha256"])
    if changed:
        return Existing("other-sources", f"it was written from other input files ({', '.join(changed)} "
                                         "changed since)")
    return Existing("ours", set_id=rec.get("set"))


def label_image(labels: np.ndarray, target: Case | Geometry, scheme: str | lab.LabelScheme = "brats2021"
                ) -> nib.Nifti1Image:
    """An internal-class label map as an image in the source geometry (what :func:`write_labels` saves).

    Raises
    ------
    CaseError, LabelSchemeError
        Wrong shape, or a class the scheme cannot store.
    """
    geo = target.geometry if isinstance(target, Case) else target
    arr = np.asarray(labels)
    if arr.shape != geo.internal_shape:
        raise CaseError(f"label map shape {arr.shape} does not match the case's {geo.internal_shape}")
    stored = lab.from_internal(arr, scheme)  # checks the values before any narrowing cast
    data = geo.from_internal(stored)
    hdr = geo.header.copy()
    hdr.set_data_dtype(np.uint8)
    cls = nib.Nifti2Image if isinstance(geo.header, nib.Nifti2Header) else nib.Nifti1Image
    img = cls(data, geo.affine, header=hdr)
    q, qc = geo.header.get_qform(coded=True)
    s, sc = geo.header.get_sform(coded=True)
    img.set_qform(q if q is not None else geo.affine, int(qc or 0))
    img.set_sform(s if s is not None else geo.affine, int(sc or 0))
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, int(stored.max(initial=0))
    img.header["descrip"] = f"napari-brats-seg labels ({lab.get_scheme(scheme).name})".encode()[:79]
    return img


def map_image(data: np.ndarray, geometry: Geometry) -> nib.Nifti1Image:
    """A float32 internal ``(z, y, x)`` map as an image in the source geometry (voxel for voxel)."""
    hdr = geometry.header.copy()
    hdr.set_data_dtype(np.float32)
    img = nib.Nifti1Image(geometry.from_internal(np.asarray(data, np.float32)), geometry.affine, header=hdr)
    img.header.set_slope_inter(1.0, 0.0)
    return img


def save_nifti(img: nib.Nifti1Image, path: Path) -> None:
    """``nib.save(img, path)``, with a ``.nii.gz`` compressed in one call by :mod:`.gz` (ISA-L when
    installed) at nibabel's level; the file is the same NIfTI, gzip-compressed."""
    path = Path(path)
    if not path.name.lower().endswith(".gz"):
        nib.save(img, str(path))
        return
    data = gz.compress(img.to_bytes())
    with open(path, "wb") as f:
        f.write(data)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputSet:
    """The outputs of one case, written all together or not at all.

    Parameters
    ----------
    case_id
        The case the outputs belong to (recorded in each file).
    sources
        Role -> :func:`file_identity` of the case's input files (recorded in each file).
    source_folder
        Where the case came from (recorded, to name it in messages).
    protected
        Files never written over (the inputs of every case of the run).
    """

    def __init__(self, case_id: str, sources: Mapping[str, dict], source_folder: str = "",
                 protected: Iterable[Path] = ()) -> None:
        self.case_id, self.sources, self.source_folder = case_id, dict(sources), source_folder
        self.protected = {Path(p).resolve() for p in protected}
        self.set_id = uuid.uuid4().hex
        self.staged: list[tuple[Path, Path]] = []  # (temporary, target)

    def add(self, img: nib.Nifti1Image, path: Path, role: str) -> None:
        """Write ``img`` for ``path`` to a temporary file, with the provenance record."""
        out = Path(path)
        if out.resolve() in self.protected:
            raise OutputExistsError(f"{out}: refusing to write over an input file")
        rec = {"tool": TOOL, "case_id": self.case_id, "role": role, "set": self.set_id,
               "source_folder": self.source_folder, "sources": self.sources}
        hdr = img.header
        for ext in [e for e in hdr.extensions if _is_ours(e)]:  # a record copied from a source header
            hdr.extensions.remove(ext)
        hdr.extensions.append(nib.nifti1.Nifti1Extension(EXT_CODE, _MAGIC + json.dumps(rec).encode()))
        tmp = temp_path(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.staged.append((tmp, out))
            save_nifti(img, tmp)
            _fsync(tmp)
        except OSError as exc:
            self.discard()
            raise output_error(exc, out) from None

    def add_segmentation(self, seg: Any, case: Case, scheme: str, out: Path, extras: Mapping[str, Path]) -> None:
        """Stage a prediction's maps, each in the case's source geometry (voxel for voxel).

        Parameters
        ----------
        seg
            A :class:`~.inference.Segmentation` (``labels``, ``probabilities``, ``uncertainty``).
        case
            The case it segments.
        scheme
            The label scheme of the label map.
        out
            The label map's path (role ``seg``, added first: the set's commit mark).
        extras
            Role -> path of the other maps to write: ``prob_WT``, ``prob_TC``, ``prob_ET`` (float32
            region probabilities) and ``uncertainty``; a role whose map ``seg`` lacks is skipped.
        """
        self.add(label_image(seg.labels, case, scheme), out, "seg")
        for region, prob in (seg.probabilities or {}).items():
            if f"prob_{region}" in extras:
                self.add(map_image(prob, case.geometry), extras[f"prob_{region}"], f"prob_{region}")
        if "uncertainty" in extras and seg.uncertainty is not None:
            self.add(map_image(seg.uncertainty, case.geometry), extras["uncertainty"], "uncertainty")

    def commit(self) -> list[Path]:
        """Rename every staged file into place, the first one added (the label map) last."""
        order = self.staged[1:] + self.staged[:1]
        try:
            for tmp, out in order:
                os.replace(tmp, out)
        except OSError as exc:
            self.discard()
            raise output_error(exc, out) from None
        self.staged = []
        return [out for _, out in order]

    def discard(self) -> None:
        """Remove the temporary files not yet renamed."""
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged = []
