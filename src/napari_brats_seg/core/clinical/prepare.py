"""Raw scans -> a case the models read: co-registered, 1 mm, skull-stripped, every step recorded.

:func:`prepare` takes a DICOM study (its series roles guessed or given) or four raw NIfTI files and
writes a BraTS 2018-2021 layout case folder (``<id>_t1/_t1ce/_t2/_flair.nii.gz``, the models' input
convention) plus ``prepare.json``:

1. read the four series (:mod:`.volume`, exact oblique geometry) or files;
2. rigidly register T1, T2 and FLAIR onto the T1ce by mutual information (:mod:`.register`);
3. resample all four onto one 1 mm grid in LPS voxel order covering the T1ce's field of view (linear);
4. brain mask (:mod:`.skullstrip`) on the T1ce, applied to all four (zero outside, as BraTS);
5. write the case atomically (a temporary folder renamed at the end) and the record: series UIDs
   or file paths, each sequence's native grid and rigid transform, the 1 mm grid, the brain mask
   method, and a QC summary (registration metric before/after per sequence, brain volume in mL).

The record is what brings results back: :func:`native_grid` gives the T1ce's own grid, onto which
a label map on the 1 mm grid is resampled by nearest neighbour (:func:`labels_to_native`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..geometry import LPS_FROM_RAS
from ..progress import CancelToken, ProgressCallback, check, report
from . import register as rg
from . import skullstrip

ROLES = ("t1", "t1ce", "t2", "flair")
RECORD = "prepare.json"


def _is_file(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and Path(value).is_file()


def load_inputs(source: str | os.PathLike | None, roles: Mapping[str, Any] | None = None,
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The four sequences as nibabel images, and what they came from.

    Parameters
    ----------
    source
        A DICOM study folder, or None when ``roles`` gives four NIfTI files.
    roles
        ``{"t1ce": "1101", ...}``: series numbers/UIDs of the study overriding the guess, or file
        paths (then all four are needed and ``source`` may be None).
    """
    import nibabel as nib

    roles = {k: v for k, v in (roles or {}).items() if v is not None}
    if roles and all(_is_file(v) for v in roles.values()):
        missing = [r for r in ROLES if r not in roles]
        if missing:
            raise CaseError(f"raw NIfTI input needs all four sequences; missing: {', '.join(missing)}")
        images = {r: nib.load(str(roles[r])) for r in ROLES}
        return images, {r: {"file": str(Path(roles[r]).resolve())} for r in ROLES}
    if source is None:
        raise CaseError("give a DICOM study folder, or four NIfTI files with --t1/--t1ce/--t2/--flair")
    from .dicom import discover
    from .roles import assign_roles
    from .volume import read_series

    study = discover(source)
    guess = assign_roles(study, roles)
    missing = [r for r, c in guess.roles.items() if c.series is None]
    if missing:
        found = ", ".join(f"{s.number} ({s.description})" for s in study.image_series())
        raise CaseError(f"no series for {', '.join(m.upper() for m in missing)} (found: {found}); "
                        "give them with --t1/--t1ce/--t2/--flair SERIES", study.root)
    images, origin = {}, {}
    for role, choice in guess.roles.items():
        s = choice.series
        images[role] = read_series(s)
        origin[role] = {"series_number": s.number, "series_uid": s.uid, "description": s.description,
                        "study_uid": s.study_uid, "plane": s.plane_text(), "role_reason": choice.reason,
                        "role_confidence": choice.confidence,
                        "study_root": str(study.root.absolute()),
                        "files": [os.path.relpath(f.absolute(), study.root.absolute()) for f in s.files],
                        "sop_instance_uids": _instance_uids(s)}
    return images, origin


def _instance_uids(series: Any) -> list[str]:
    """The SOPInstanceUID of each file of the series, in file order (read at discovery)."""
    first = {}
    for f in series.frames:
        first.setdefault(f.path, f.sop_uid)
    return [first[p] for p in series.files]


def grid_1mm(reference: Any, spacing: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An LPS-ordered grid of ``spacing`` mm covering ``reference``'s field of view (RAS affine, shape)."""
    shape = np.array(reference.shape[:3])
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    lps = (LPS_FROM_RAS @ (reference.affine[:3, :3] @ corners.T + reference.affine[:3, 3:4])).T
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    n = tuple(int(v) for v in np.floor((hi - lo) / spacing).astype(int) + 1)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS * spacing  # voxel axes run to L, P, S
    affine[:3, 3] = LPS_FROM_RAS @ lo
    return affine, n


def prepare(source: str | os.PathLike | None, out_dir: str | os.PathLike, *, roles: Mapping[str, Any] | None = None,
            case_id: str | None = None, skull_strip: str = "auto", spacing: float = 1.0,
            registration_spacing: float | None = 2.0,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Prepare a study (or four files) as a case folder; returns the record written as prepare.json.

    ``registration_spacing`` (mm): the registration works on copies block-averaged to that voxel
    size (None: the images as they are); the resampling always uses the full-resolution images.

    Raises
    ------
    CaseError
        Bad or missing input (named), an output folder that exists and is not empty.
    Cancelled
        When ``cancel`` is set; checked between steps (nothing is written then).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise CaseError("the output folder exists and is not empty; choose a new folder", out)
    method = skullstrip.resolve(skull_strip)
    case_id = case_id or out.name
    total, step, times = 10, 0, {}

    def tick(msg: str) -> None:
        nonlocal step
        check(cancel)
        step += 1
        report(on_progress, step, total, msg)

    t0 = time.perf_counter()
    images, origin = load_inputs(source, roles)
    tick("read the four sequences")
    times["read_s"] = time.perf_counter() - t0
    fixed = images["t1ce"]
    transforms: dict[str, rg.RigidResult | None] = {"t1ce": None}
    for role in ("t1", "t2", "flair"):
        t = time.perf_counter()
        check(cancel)
        transforms[role] = rg.rigid_register(fixed, images[role], spacing=registration_spacing)
        times[f"register_{role}_s"] = time.perf_counter() - t
        tick(f"registered {role.upper()} to T1ce")
    affine, shape = grid_1mm(fixed, spacing)
    t = time.perf_counter()
    resampled = {}
    for role in ROLES:
        resampled[role] = np.asarray(rg.resample(images[role], affine, shape, transforms[role]).dataobj, np.float32)
        tick(f"resampled {role.upper()} to {spacing:g} mm")
    times["resample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    mask = skullstrip.brain_mask(resampled["t1ce"], (spacing,) * 3, method)
    times["skull_strip_s"] = time.perf_counter() - t
    tick("brain mask")
    record = _record(case_id, origin, images, transforms, affine, shape, method, mask, spacing, times)
    record["registration_spacing_mm"] = registration_spacing
    _write_case(out, case_id, resampled, mask, affine, record)
    tick("wrote the case")
    return record


def _record(case_id: str, origin: dict, images: dict, transforms: dict, affine: np.ndarray, shape: tuple,
            method: str, mask: np.ndarray, spacing: float, times: dict) -> dict[str, Any]:
    seqs = {}
    for role in ROLES:
        img, tr = images[role], transforms[role]
        seqs[role] = {**origin[role], "native_affine_ras": np.asarray(img.affine).round(6).tolist(),
                      "native_shape": list(img.shape[:3]),
                      "to_t1ce": tr.to_dict() if tr is not None else {"kind": "identity (the fixed image)"}}
    return {
        "format": "napari-brats-seg prepare", "version": 1, "case_id": case_id, "layout": "brats2021",
        "fixed": "t1ce", "sequences": seqs,
        "grid": {"affine_ras": affine.round(6).tolist(), "shape": list(shape), "spacing_mm": spacing,
                 "orientation": "LPS", "covers": "the T1ce's field of view"},
        "skull_strip": {**skullstrip.describe(method), "applied_to": "all four, from the T1ce's mask"},
        "qc": {"brain_volume_ml": round(float(mask.sum()) * spacing ** 3 / 1000.0, 1),
               "registration": {r: {"metric_before": transforms[r].metric_before,
                                    "metric_after": transforms[r].metric_after,
                                    "rotation_deg": round(transforms[r].rotation_deg, 3)}
                                for r in ("t1", "t2", "flair")}},
        "timings_s": {k: round(v, 2) for k, v in times.items()},
    }


def _write_case(out: Path, case_id: str, images: dict[str, np.ndarray], mask: np.ndarray, affine: np.ndarray,
                record: dict[str, Any]) -> None:
    import nibabel as nib

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for role, arr in images.items():
            img = nib.Nifti1Image(np.where(mask, arr, 0).astype(np.float32), affine)
            img.set_qform(affine, 1)
            img.set_sform(affine, 1)
            img.header.set_xyzt_units("mm", "sec")
            nib.save(img, str(tmp / f"{case_id}_{role}.nii.gz"))
        (tmp / RECORD).write_text(json.dumps(record, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_record(case_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The prepare record of a prepared case folder, or None for any other case."""
    path = Path(case_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CaseError(f"cannot read the prepare record ({exc})", path) from None
    if record.get("format") != "napari-brats-seg prepare":
        raise CaseError("not a napari-brats-seg prepare record", path)
    return record


def native_grid(record: Mapping[str, Any], role: str = "t1ce") -> tuple[np.ndarray, tuple[int, int, int]]:
    """The native (source series) grid of ``role``: RAS affine and shape."""
    seq = record["sequences"][role]
    return np.array(seq["native_affine_ras"], float), tuple(seq["native_shape"])


def labels_to_native(labels_img: Any, record: Mapping[str, Any]) -> Any:
    """A label map on the prepared 1 mm grid, resampled (nearest neighbour) onto the source T1ce grid."""
    affine, shape = native_grid(record, "t1ce")
    return rg.resample(labels_img, affine, shape, None, nearest=True)
