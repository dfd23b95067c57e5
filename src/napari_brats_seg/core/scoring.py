"""Scoring label files: two maps (files or case folders) read, their schemes decided, scored.

What ``brats-seg score`` computes: label schemes are detected from the values and the file naming
unless given; when one map's scheme is ambiguous (e.g. values {0, 1, 2}, which three schemes allow)
and the other map's scheme fits its values, that scheme is used. Both maps must lie on the same voxel
grid (after reorientation to the internal LPS order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import labels as lab
from .errors import CaseError, LabelSchemeError
from .geometry import Geometry

#: Appended to the error of a map whose scheme cannot be decided (``{}``: ``pred`` or ``gt``).
SCHEME_HINT = "; give scheme_{} (brats2021, brats2023, msd)"


def label_file(arg: str | Path) -> tuple[Path, str | None]:
    """The label file an argument names, and the layout its naming implies (None if unknown)."""
    from .io import classify_file, find_case_files

    path = Path(arg)
    if path.is_dir():
        cf = find_case_files(path)
        if cf.seg is None:
            raise CaseError("case folder has no ground-truth file (_seg / -seg)", path)
        return cf.seg, cf.layout
    if not path.exists():
        raise CaseError("no such file or folder", path)
    cls = classify_file(path)
    return path, (cls[0] if cls and cls[2] == "seg" else None)


def _read(path: Path, layout: str | None, scheme: str | None, other_scheme: str | None = None
          ) -> tuple[np.ndarray, lab.LabelScheme, Geometry, str]:
    """Read a label map; if its scheme is ambiguous, fall back to ``other_scheme`` when that fits."""
    from .io import load_nifti, read_labels

    if scheme is not None:
        arr, sch, geo = read_labels(path, scheme=scheme)
        return arr, sch, geo, "given"
    try:
        arr, sch, geo = read_labels(path, layout=layout)
        return arr, sch, geo, "detected"
    except CaseError:
        data, _ = load_nifti(path, allow_empty=True)
        try:
            det = lab.detect_scheme(np.asarray(data).astype(np.int64))
        except lab.LabelSchemeError:
            raise  # values of no scheme: read_labels' message stands
        if det.scheme is not None:
            raise
        if other_scheme is not None and other_scheme in det.candidates:
            arr, sch, geo = read_labels(path, scheme=other_scheme)
            return arr, sch, geo, "assumed from the other map"
        raise


def score_files(pred: str | Path, gt: str | Path, *, scheme_pred: str | None = None,
                scheme_gt: str | None = None, lesion_dilation: int = 3, lesion_min_volume: float = 50.0,
                scheme_hint: str = SCHEME_HINT) -> dict:
    """Read two label maps (files or case folders) and score them; the JSON object ``score --json`` prints.

    Parameters
    ----------
    pred, gt
        Label files, or case folders (their ground truth).
    scheme_pred, scheme_gt
        Their label schemes; None to detect them (an ambiguous one takes the other map's when it fits).
    lesion_dilation, lesion_min_volume
        BraTS 2023 lesion-wise settings (ground-truth dilation in voxels, smallest scored lesion in mm³).
    scheme_hint
        Appended to the error when a scheme cannot be decided; ``{}`` becomes ``pred`` or ``gt``.

    Returns
    -------
    dict
        ``WT``, ``TC``, ``ET`` (:func:`~.metrics.compute_metrics` per region), ``labels``,
        ``lesionwise`` and ``inputs`` (files, schemes and how they were found, grid, settings).

    Raises
    ------
    CaseError
        Unreadable files, a scheme that cannot be decided, or maps on different grids.
    """
    from .io import AFFINE_ATOL
    from .metrics import compute_metrics

    gpath, glayout = label_file(gt)
    ppath, playout = label_file(pred)
    hint = scheme_hint
    try:
        g, gs, ggeo, gvia = _read(gpath, glayout, scheme_gt)
    except (CaseError, LabelSchemeError) as exc:
        raise CaseError(f"{exc}{hint.format('gt') if 'choose' in str(exc) else ''}") from None
    try:
        p, ps, pgeo, pvia = _read(ppath, playout, scheme_pred, gs)
    except (CaseError, LabelSchemeError) as exc:
        raise CaseError(f"{exc}{hint.format('pred') if 'choose' in str(exc) else ''}") from None
    if pgeo.internal_shape != ggeo.internal_shape:
        raise CaseError(f"prediction lies on a different grid than the ground truth {gpath.name}: shape "
                        f"{pgeo.shape} vs {ggeo.shape}", ppath)
    diff = float(np.abs(pgeo.internal_affine - ggeo.internal_affine).max())
    if diff > AFFINE_ATOL:
        raise CaseError(f"prediction lies on a different grid than the ground truth {gpath.name}: affines "
                        f"differ by up to {diff:.4g} mm", ppath)
    spacing = ggeo.spacing
    m = compute_metrics(p, g, spacing, lesionwise=True, lesion_dilation=lesion_dilation,
                        min_lesion_volume_mm3=lesion_min_volume)
    out = {r: m[r] for r in ("WT", "TC", "ET")}
    out["labels"] = m["labels"]
    out["lesionwise"] = m["lesionwise"]
    out["inputs"] = {
        "pred": {"file": str(ppath), "scheme": ps.name, "scheme_from": pvia},
        "gt": {"file": str(gpath), "scheme": gs.name, "scheme_from": gvia},
        "spacing_zyx_mm": list(spacing), "shape_zyx": list(ggeo.internal_shape),
        "lesion_dilation": lesion_dilation, "lesion_min_volume_mm3": lesion_min_volume,
    }
    return out
