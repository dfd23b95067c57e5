"""A follow-up registered rigidly onto the baseline, its quality judged, its labels brought onto the baseline grid.

The registration is :func:`..clinical.register.rigid_register` (Mattes mutual information, rigid,
three resolutions) on the whole registration sequence (T1ce, else FLAIR) of both scans, both first
block-averaged to ``registration_spacing`` mm (a rigid transform needs no finer detail, and it is
several times faster). The tumour is left in: it is a small part of the brain, and a rigid transform
cannot follow its change.

Quality and identity. BraTS NIfTI files carry no patient identity, so whether two scans are of one
patient cannot be known; the evidence used and shown is the registration metric (no better than
before the registration, or above :data:`POOR_METRIC`: a poor alignment, as between different
patients or sequences) and the brain volumes (differing by more than :data:`BRAIN_MISMATCH`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CaseError
from .timepoint import TimePoint

#: Mattes MI (ITK sign, lower is better) after the registration above which the alignment is called poor,
#: for the default 2 mm registration images. Chosen on the real BraTS 2018 cases (README, "Two time points"):
#: a case against itself moved 5 degrees and 4 mm registers to -0.72 to -0.79, pairs of different patients
#: to -0.36 to -0.46; a real follow-up (new noise, changed tumour) lies between, hence the margin.
POOR_METRIC = -0.55
#: Relative brain-volume difference above which the scans look like different patients.
BRAIN_MISMATCH = 0.08
#: Default spacing (mm) of the images the registration works on.
REGISTRATION_SPACING = 2.0


@dataclass
class PairRegistration:
    """How a follow-up was brought onto the baseline grid.

    Attributes
    ----------
    method
        ``"rigid"`` or ``"none"`` (identical grids, labels alone).
    result
        The :class:`..clinical.register.RigidResult` (None without registration).
    warnings
        Poor metric, no improvement, brain-volume mismatch: in words.
    """

    method: str
    result: Any = None
    spacing_mm: float | None = None
    brain_change: float | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready."""
        out: dict = {"method": self.method, "warnings": list(self.warnings), "notes": list(self.notes),
                     "brain_volume_change_pct": None if self.brain_change is None else round(100 * self.brain_change, 2)}
        if self.result is not None:
            r = self.result
            out.update({"registration_spacing_mm": self.spacing_mm, "metric": "Mattes mutual information "
                        "(lower is better)", "metric_before": round(r.metric_before, 4),
                        "metric_after": round(r.metric_after, 4), "poor_metric_above": POOR_METRIC,
                        "rotation_deg": round(r.rotation_deg, 3), "matrix_lps_fixed_to_moving": r.matrix.round(6).tolist()})
        return out


def downsampled(img: Any, spacing_mm: float) -> Any:
    """``img`` block-averaged to about ``spacing_mm`` (an integer factor per axis; the same world extent)."""
    import nibabel as nib

    zooms = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
    f = [max(1, int(round(spacing_mm / z))) for z in zooms]
    if f == [1, 1, 1]:
        return img
    data = np.asarray(img.dataobj, np.float32)
    n = [s // k * k for s, k in zip(data.shape, f, strict=True)]
    data = data[: n[0], : n[1], : n[2]].reshape(n[0] // f[0], f[0], n[1] // f[1], f[1], n[2] // f[2], f[2])
    affine = np.asarray(img.affine, float) @ np.diag([*f, 1.0])
    affine[:3, 3] = np.asarray(img.affine)[:3, :3] @ ((np.asarray(f) - 1) / 2) + np.asarray(img.affine)[:3, 3]
    return nib.Nifti1Image(np.ascontiguousarray(data.mean(axis=(1, 3, 5))), affine)


def register_pair(baseline: TimePoint, followup: TimePoint, *, spacing_mm: float | None = REGISTRATION_SPACING,
                  on_iteration: Any = None) -> PairRegistration:
    """Register ``followup`` onto ``baseline`` (or check that labels alone share its grid).

    Raises
    ------
    CaseError
        Labels alone on a grid other than the baseline's (nothing to register them with).
    """
    from ..clinical.register import rigid_register

    if baseline.image is None or followup.image is None:
        if baseline.geometry.grid_difference(followup.geometry) is not None:
            raise CaseError(f"{followup.name}: labels alone on a grid other than {baseline.name}'s cannot be "
                            "registered: give both time points as cases (folders with images)", followup.source)
        return PairRegistration("none", notes=[
            (f"{followup.name}: not registered (labels alone, no images); the grids are identical, so the label "
            "maps are compared voxel for voxel, which assumes the head did not move between the scans")])
    if baseline.image_name != followup.image_name:
        raise CaseError(f"cannot register {followup.name}'s {followup.image_name} onto {baseline.name}'s "
                        f"{baseline.image_name}: give both with the same sequence", followup.source)
    fixed, moving = baseline.image_nifti(), followup.image_nifti()
    if spacing_mm:
        fixed, moving = downsampled(fixed, spacing_mm), downsampled(moving, spacing_mm)
    res = rigid_register(fixed, moving, on_iteration=on_iteration)
    reg = PairRegistration("rigid", res, spacing_mm)
    reg.notes.append(f"{followup.name} registered rigidly onto {baseline.name} on the {baseline.image_name} "
                     f"(rotation {res.rotation_deg:.2f} degrees; Mattes MI {res.metric_before:.3f} -> "
                     f"{res.metric_after:.3f}, lower is better)")
    reg.warnings += quality_warnings(baseline, followup, reg)
    return reg


def quality_warnings(baseline: TimePoint, followup: TimePoint, reg: PairRegistration) -> list[str]:
    """The registration's warnings: no improvement, a poor metric, brain volumes apart."""
    out = []
    r = reg.result
    poor = r.metric_after >= r.metric_before or r.metric_after > POOR_METRIC
    if r.metric_after >= r.metric_before:
        out.append(f"registration of {followup.name} did not improve the metric ({r.metric_before:.3f} -> "
                   f"{r.metric_after:.3f}): the alignment is not to be trusted")
    elif r.metric_after > POOR_METRIC:
        out.append(f"poor registration of {followup.name} onto {baseline.name}: Mattes MI {r.metric_after:.3f} "
                   f"(above {POOR_METRIC}; the same patient's scans align below it): check the alignment before "
                   "trusting the lesion matching")
    if baseline.brain_ml and followup.brain_ml:
        reg.brain_change = (followup.brain_ml - baseline.brain_ml) / baseline.brain_ml
        if abs(reg.brain_change) > BRAIN_MISMATCH:
            out.append(f"brain volumes differ by {100 * reg.brain_change:+.1f} % ({baseline.brain_ml:.0f} vs "
                       f"{followup.brain_ml:.0f} mL)")
    if poor or (reg.brain_change is not None and abs(reg.brain_change) > BRAIN_MISMATCH):
        out.append(f"{baseline.name} and {followup.name} may be different patients or sequences: the NIfTI files "
                   "carry no patient identity, this is judged from the registration metric and brain volumes only")
    return out


def onto_baseline(baseline: TimePoint, followup: TimePoint, reg: PairRegistration, values: np.ndarray,
                  *, nearest: bool = True) -> np.ndarray:
    """A follow-up internal ``(z, y, x)`` array resampled onto the baseline's internal grid (0 outside)."""
    import nibabel as nib

    from ..clinical.register import to_sitk

    if reg.method == "none":  # same world grid: both internal arrays are already voxel for voxel
        return np.asarray(values)
    import SimpleITK as sitk

    ref = to_sitk(nib.Nifti1Image(np.zeros(baseline.grid_shape, np.float32), baseline.grid_affine))
    src = to_sitk(nib.Nifti1Image(np.ascontiguousarray(np.asarray(values).transpose(2, 1, 0), np.float32),
                                  followup.grid_affine))
    out = sitk.Resample(src, ref, reg.result.sitk_transform(), sitk.sitkNearestNeighbor if nearest
                        else sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(out)  # sitk's array of an (x, y, z) image is (z, y, x): internal order
    return arr.astype(values.dtype) if nearest else arr
