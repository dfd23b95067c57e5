"""Rigid registration of one MRI sequence onto another (mutual information, SimpleITK).

Why SimpleITK: it is ITK's registration framework (the same code 3D Slicer's BRAINSFit and
elastix build on), a single pip wheel with no compiler or network needed, BSD/Apache licensed, and
it reads and resamples the oblique geometries of clinical series exactly. ANTsPy is heavier for a
rigid-only job; itk-elastix needs parameter files for the same result.

The method: a 6-parameter Euler transform about the fixed image's centre, started at identity
(series of one session share the scanner's patient frame, so identity is the right start), Mattes
mutual information (50 bins; 20 / 5 / 1 % random samples per level, seeded), regular-step gradient descent with
physical-unit scales, three resolutions (shrink 4/2/1, smoothing 2/1/0 mm). The metric before
and after is reported for QC: MI is negative in ITK, lower is better.

Images go in and out as ``nibabel`` images (RAS affines); :func:`to_sitk` / :func:`from_sitk`
convert exactly (ITK is LPS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BratsSegError, CaseError
from ..geometry import LPS_FROM_RAS


def _sitk() -> Any:
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover - part of the [clinical] extra
        raise CaseError("registration needs SimpleITK: pip install 'napari-brats-seg[clinical]'") from None
    return sitk


def to_sitk(img: Any) -> Any:
    """A nibabel image as a SimpleITK image (float32), same world geometry."""
    sitk = _sitk()
    affine = np.asarray(img.affine, float)
    lps = LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    out = sitk.GetImageFromArray(np.asarray(img.dataobj, np.float32).transpose(2, 1, 0))
    out.SetSpacing([float(s) for s in spacing])
    out.SetDirection([float(v) for v in (lps / spacing).ravel()])
    out.SetOrigin([float(v) for v in LPS_FROM_RAS @ affine[:3, 3]])
    return out


def from_sitk(image: Any, dtype: Any = np.float32) -> Any:
    """A SimpleITK image as a nibabel image (RAS affine, qform and sform set)."""
    import nibabel as nib

    sitk = _sitk()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = LPS_FROM_RAS @ np.array(image.GetOrigin())
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(dtype)
    out = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    out.set_qform(affine, 1)
    out.set_sform(affine, 1)
    return out


@dataclass(frozen=True)
class RigidResult:
    """A rigid transform from fixed-image world points to moving-image world points (LPS mm).

    Attributes
    ----------
    matrix
        4x4 homogeneous matrix, LPS mm: ``moving_point = matrix @ fixed_point`` (ITK's convention:
        the transform maps the fixed image's points into the moving image, which is what
        resampling the moving image onto the fixed grid needs).
    metric_before, metric_after
        Mattes mutual information at identity and at the result (ITK sign: lower is better).
    iterations
        Optimiser iterations at the finest level.
    """

    matrix: np.ndarray
    metric_before: float
    metric_after: float
    iterations: int

    @property
    def rotation_deg(self) -> float:
        """The rotation angle of the transform, in degrees."""
        r = self.matrix[:3, :3]
        return math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(r) - 1) / 2))))

    @property
    def translation_mm(self) -> float:
        """The length of the translation at the world origin, in mm."""
        return float(np.linalg.norm(self.matrix[:3, 3]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (prepare.json)."""
        return {"kind": "rigid", "frame": "LPS mm, fixed -> moving", "matrix": self.matrix.round(8).tolist(),
                "rotation_deg": round(self.rotation_deg, 4), "metric": "Mattes mutual information (lower is better)",
                "metric_before": round(self.metric_before, 6), "metric_after": round(self.metric_after, 6),
                "iterations": self.iterations}

    def sitk_transform(self) -> Any:
        """The transform as a SimpleITK ``AffineTransform``."""
        sitk = _sitk()
        t = sitk.AffineTransform(3)
        t.SetMatrix([float(v) for v in self.matrix[:3, :3].ravel()])
        t.SetTranslation([float(v) for v in self.matrix[:3, 3]])
        return t


def _matrix_of(transform: Any) -> np.ndarray:
    m = np.eye(4)
    r = np.array(transform.GetMatrix()).reshape(3, 3)
    c = np.array(transform.GetCenter())
    t = np.array(transform.GetTranslation())
    m[:3, :3] = r
    m[:3, 3] = t + c - r @ c
    return m


def _normalised(image: Any) -> Any:
    sitk = _sitk()
    arr = sitk.GetArrayViewFromImage(image)
    hi = float(np.percentile(arr[arr > 0], 99.5)) if np.any(arr > 0) else 1.0
    return sitk.Clamp(sitk.Cast(image, sitk.sitkFloat32), lowerBound=0.0, upperBound=hi or 1.0)


def _binned(image: Any, spacing: float | None) -> Any:
    """``image`` block-averaged (SimpleITK BinShrink) to about ``spacing`` mm per axis; as is when None."""
    if not spacing:
        return image
    sitk = _sitk()
    factors = [max(1, int(round(spacing / s))) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def rigid_register(fixed: Any, moving: Any, *, seed: int = 0, spacing: float | None = None,
                   on_iteration: Callable[[int], None] | None = None) -> RigidResult:
    """Register ``moving`` onto ``fixed`` (both nibabel images), rigidly, by mutual information.

    Parameters
    ----------
    fixed, moving
        Images in world coordinates (any grids, oblique allowed).
    seed
        Seed of the metric's random sampling (the result is reproducible).
    spacing
        Register copies block-averaged to about this voxel size (mm), e.g. 2: several times faster
        and as exact for a rigid transform (the tests recover a known one within 1 mm and 1 degree);
        None registers the images as they are.
    on_iteration
        Called with the iteration count at each optimiser step (progress and cancel: raise
        :class:`~napari_brats_seg.core.errors.Cancelled` from it to stop).

    Raises
    ------
    BratsSegError
        When the images do not overlap or the optimiser fails (the message says which).
    """
    sitk = _sitk()
    f, m = _normalised(_binned(to_sitk(fixed), spacing)), _normalised(_binned(to_sitk(moving), spacing))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    coarse = bool(spacing and spacing >= 1.5)  # copies already binned: fewer levels, more samples
    reg.SetMetricSamplingPercentagePerLevel([0.2, 0.2] if coarse else [0.2, 0.05, 0.01], seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=100,
                                                 gradientMagnitudeTolerance=1e-6, relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1] if coarse else [4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 0.0] if coarse else [2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    center = f.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in f.GetSize()])
    init = sitk.Euler3DTransform()
    init.SetCenter(center)
    reg.SetInitialTransform(init, inPlace=False)
    if on_iteration is not None:
        reg.AddCommand(sitk.sitkIterationEvent, lambda: on_iteration(reg.GetOptimizerIteration()))
    try:
        before = reg.MetricEvaluate(f, m)
        result = reg.Execute(f, m)
    except RuntimeError as exc:
        raise BratsSegError(f"rigid registration failed (do the images overlap?): {str(exc).splitlines()[-1]}") \
            from None
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(result).GetNthTransform(0)) \
        if result.GetName() == "CompositeTransform" else sitk.Euler3DTransform(result)
    return RigidResult(_matrix_of(euler), float(before), _final_metric(f, m, euler), int(reg.GetOptimizerIteration()))


def _final_metric(fixed: Any, moving: Any, transform: Any) -> float:
    """The metric at ``transform`` on the images the search used (its metric and sampling settings)."""
    sitk = _sitk()
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, 0)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


def resample(moving: Any, grid_affine: np.ndarray, grid_shape: tuple[int, int, int],
             transform: RigidResult | None = None, *, nearest: bool = False) -> Any:
    """``moving`` resampled onto a grid (RAS affine + shape), through ``transform`` when given.

    Linear interpolation for images, nearest neighbour for label maps (``nearest=True``); 0 outside.
    """
    import nibabel as nib

    sitk = _sitk()
    ref = to_sitk(nib.Nifti1Image(np.zeros(grid_shape, np.float32), grid_affine))
    src = to_sitk(moving)
    t = transform.sitk_transform() if transform is not None else sitk.Transform()
    out = sitk.Resample(src, ref, t, sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return from_sitk(out, np.uint8 if nearest else np.float32)
