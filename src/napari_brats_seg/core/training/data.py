"""Training data: cases in any layout, validated case by case, resampled, cropped and patch-sampled.

A :class:`Sample` is one case ready for training, made by :func:`~napari_brats_seg.core.placement.prepare` exactly as
:func:`~napari_brats_seg.core.inference.predict` prepares a case (resampled to the model's spacing, normalised, cropped to
the brain and its tumour, in the model's voxel order; not padded): normalised images
``(C, a0, a1, a2)``, internal class labels ``(a0, a1, a2)`` on the same grid (the label with the
largest trilinear share where the grid is resampled), the :class:`~napari_brats_seg.core.placement.Placement` that maps
predictions back to the case's grid, and the ground truth there (for validation on the case's own
grid, as users' predictions are scored). Broken cases (a missing sequence, a label map on another
grid, unreadable files, no ground truth) are reported one by one as :class:`Problem` and skipped,
never silently.

Patches are drawn around tumour and brain voxels (:func:`sample_patch`) and augmented with MONAI
transforms (flips, intensity scale and shift, a small affine) built by :func:`augmentation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import preprocess as pp
from ..errors import BratsSegError, CaseError
from ..models.spec import ModelSpec
from ..placement import BRAIN_MARGIN, Placement, brain_mask, prepare
from ..progress import CancelToken, ProgressCallback, check, report

#: Internal class count (bg, NCR, ED, ET).
N_CLASSES = 4


@dataclass
class Sample:
    """One training case.

    Attributes
    ----------
    case_id
        The case's identifier.
    image
        Normalised float32 ``(C, a0, a1, a2)`` in model axes, at the training resolution.
    label
        Internal classes uint8 ``(a0, a1, a2)`` at the training resolution.
    placement
        How ``image``'s grid lies on the case's grid (:func:`~napari_brats_seg.core.placement.prepare`).
    truth
        The ground truth on the case's grid, cut to ``truth_box`` (the tumour's bounding box; outside
        it every voxel is background); None unless asked for.
    truth_box
        Where ``truth`` lies in the case's ``(z, y, x)`` grid.
    source
        The case folder or file.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    placement: Placement | None = field(default=None, repr=False)
    truth: np.ndarray | None = field(default=None, repr=False)
    truth_box: tuple[slice, ...] = ()
    source: str = ""


@dataclass
class Problem:
    """A case that could not be used, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def downsample_image(img: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over ``factor``-sized cubes of ``(C, ...)`` (pads the edge by replication)."""
    if factor == 1:
        return img.astype(np.float32, copy=False)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]
    pad = [p for s in reversed(img.shape[1:]) for p in (0, (-s) % factor)]
    if any(pad):
        t = F.pad(t, pad, mode="replicate")
    return F.avg_pool3d(t, factor).numpy()[0]


def downsample_labels(lab: np.ndarray, factor: int, n_classes: int = N_CLASSES + 1) -> np.ndarray:
    """Majority class over ``factor``-sized cubes (ties go to the higher class: tumour wins)."""
    if factor == 1:
        return lab.astype(np.uint8, copy=False)
    onehot = np.stack([(lab == c) for c in range(n_classes)]).astype(np.float32)
    frac = downsample_image(onehot, factor)
    frac += np.arange(n_classes, dtype=np.float32)[:, None, None, None] * 1e-4
    return np.argmax(frac, axis=0).astype(np.uint8)


def prepare_case(case: Any, spec: ModelSpec, *, margin: int = BRAIN_MARGIN, keep_truth: bool = False) -> Sample:
    """Turn a read :class:`~napari_brats_seg.core.case.Case` (with ground truth) into a :class:`Sample` for ``spec``.

    The box holds the brain and the tumour plus ``margin`` voxels; ``keep_truth`` keeps the ground
    truth on the case's grid for validation.

    Raises
    ------
    CaseError
        When the case has no ground truth, lacks a channel or holds only zeros.
    """
    gt = case.ground_truth
    if gt is None:
        raise CaseError("no ground-truth label map (training needs <id>_seg)", case.sources.get("t1"))
    try:
        if not brain_mask(case, spec.channels).any():
            raise CaseError(f"case {case.case_id}: every voxel is zero")
        image, placement = prepare(case, spec, margin=margin, include=gt > 0, pad=False)
    except KeyError as exc:
        raise CaseError(str(exc.args[0])) from None
    label = placement.forward(gt, labels=True).astype(np.uint8)
    box = pp.bounding_box(gt > 0) if gt.any() else (slice(0, 0),) * 3
    truth = np.ascontiguousarray(gt[box], dtype=np.uint8) if keep_truth else None
    return Sample(case.case_id, image, label, placement, truth, box, str(case.sources.get("t1", case.case_id)))


def _data_spec(channels: Sequence[str], orientation: str, normalization: dict) -> ModelSpec:
    """A spec that only says how to prepare training data (the spacing is set per case)."""
    return ModelSpec(name="training data", family="unet3d", channels=tuple(channels), orientation=orientation,
                     normalization=dict(normalization))


def load_samples(sources: Iterable[str | Path], *, spec: ModelSpec | None = None,
                 channels: Sequence[str] = ("t1", "t1ce", "t2", "flair"), orientation: str = "LPS",
                 normalization: dict | None = None, factor: int = 1, keep_truth: bool = False,
                 on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                 ) -> tuple[list[Sample], list[Problem]]:
    """Read and prepare every case under ``sources``; report broken ones instead of failing.

    Parameters
    ----------
    sources
        Case folders, folders of cases, MSD files (anything :func:`~napari_brats_seg.core.io.find_cases` expands).
    spec
        The model the samples are for (channels, voxel order, normalisation, spacing). Without it,
        ``channels``, ``orientation`` and ``normalization`` say how, and every case is kept at its own
        spacing times the integer ``factor`` (2: 1 mm files are trained at 2 mm).
    keep_truth
        Keep each case's ground truth on its grid (:attr:`Sample.truth`, for validation).

    Returns
    -------
    samples, problems
        The usable cases, and one :class:`Problem` per case that was skipped.
    """
    from ..io import find_cases, read_case
    from ..resample import model_spacing

    base = spec or _data_spec(channels, orientation, normalization or {"kind": "zscore_brain"})
    problems: list[Problem] = []
    paths: list[Path] = []
    for src in sources:
        try:
            paths.extend(find_cases([src]))
        except CaseError as exc:
            problems.append(Problem(str(src), str(exc)))
    samples: list[Sample] = []
    for i, path in enumerate(paths):
        check(cancel)
        report(on_progress, i, len(paths), f"reading {Path(path).name}")
        try:
            case = read_case(path)
            case_spec = base if spec is not None else replace(
                base, spacing=tuple(factor * s for s in model_spacing(case.spacing, base.orientation)))
            samples.append(prepare_case(case, case_spec, keep_truth=keep_truth))
        except CaseError as exc:
            problems.append(Problem(str(path), str(exc)))
    report(on_progress, len(paths), len(paths), "cases read")
    return samples, problems


def class_channels(lab: np.ndarray, classes: Sequence[int] = (0, 1, 2, 3)) -> np.ndarray:
    """Internal classes -> the output channel of each (``classes[channel]`` is the internal class)."""
    lut = np.zeros(N_CLASSES + 1, np.int64)
    for ch, c in enumerate(classes):
        if c >= 0:
            lut[c] = ch
    return lut[lab]


def labels_to_target(lab: np.ndarray, output: str, regions: Sequence[str] = ("WT", "TC", "ET"),
                     classes: Sequence[int] = (0, 1, 2, 3)) -> np.ndarray:
    """Training target of a label map: region masks ``(R, ...)`` float32, or the output-channel
    index of each voxel's class ``(1, ...)`` int64."""
    if output == "regions":
        from ..labels import region_masks

        masks = region_masks(lab)
        return np.stack([masks[r] for r in regions]).astype(np.float32)
    return class_channels(lab, classes)[None]


def sample_patch(sample: Sample, patch: Sequence[int], rng: np.random.Generator, *,
                 p_tumour: float = 0.67, class_balance: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cut one patch centred on a tumour voxel (probability ``p_tumour``) or on a brain voxel.

    With ``class_balance`` the tumour centre is first drawn uniformly among the classes present
    (Havaei et al.'s balanced patches), then uniformly among that class's voxels.
    Zero padding where the patch leaves the volume (labels pad with background).

    Returns
    -------
    image, label
        ``(C, *patch)`` float32 and ``patch`` uint8.
    """
    lab = sample.label
    nd = len(patch)
    if rng.random() < p_tumour and lab.any():
        if class_balance:
            present = [c for c in range(1, N_CLASSES) if np.any(lab == c)]
            pts = np.argwhere(lab == present[rng.integers(len(present))])
        else:
            pts = np.argwhere(lab > 0)
    else:
        pts = np.argwhere(np.any(sample.image != 0, axis=0))
        if len(pts) == 0:
            pts = np.argwhere(np.ones_like(lab, bool))
    centre = pts[rng.integers(len(pts))]
    if nd == 2:  # axial slice patches: last axis of LPS-ordered volumes is S
        lo = [int(centre[0]) - patch[0] // 2, int(centre[1]) - patch[1] // 2]
        img2 = sample.image[..., int(centre[2])]
        lab2 = lab[..., int(centre[2])]
        return _cut(img2, lab2, lo, patch)
    lo = [int(c) - p // 2 for c, p in zip(centre, patch)]
    return _cut(sample.image, lab, lo, patch)


def _cut(img: np.ndarray, lab: np.ndarray, lo: Sequence[int], patch: Sequence[int]
         ) -> tuple[np.ndarray, np.ndarray]:
    shape = lab.shape
    out_i = np.zeros((img.shape[0], *patch), np.float32)
    out_l = np.zeros(tuple(patch), np.uint8)
    src, dst = [], []
    for _a, (l, p, s) in enumerate(zip(lo, patch, shape)):
        s0, s1 = max(l, 0), min(l + p, s)
        src.append(slice(s0, s1))
        dst.append(slice(s0 - l, s1 - l))
    out_i[(slice(None), *dst)] = img[(slice(None), *src)]
    out_l[tuple(dst)] = lab[tuple(src)]
    return out_i, out_l


#: Augmentation recipes :func:`augmentation` knows.
AUGMENTATIONS = ("basic", "nnunet")


def augmentation(dims: int = 3, *, affine_prob: float = 0.2, seed: int = 0, recipe: str = "basic"
                 ) -> Callable[[dict], dict]:
    """MONAI augmentation of ``{"image": (C, ...), "label": (1, ...)}``.

    ``recipe="basic"`` (the shipped models' recipe): flips on every axis, intensity scale (+-10 %) and
    shift (+-0.1 sd), and, with ``affine_prob``, a small affine (rotation up to ~6 degrees, scale +-10 %).

    ``recipe="nnunet"``: nnU-Net's default 3D augmentation as far as MONAI has it: with ``affine_prob``
    a rotation up to 30 degrees and a scale of 0.7-1.4 per axis; Gaussian noise (p 0.1, sd up to 0.1),
    Gaussian blur (p 0.2, sigma 0.5-1 voxel), brightness (multiplicative 0.75-1.25, p 0.15),
    contrast (p 0.15), simulated low resolution (down to half the resolution and back, p 0.25: the
    thick slices of clinical series), gamma (0.7-1.5, p 0.3, intensity statistics kept), then flips
    on every axis. Elastic deformation is left out, as nnU-Net's default leaves it out.
    """
    if recipe not in AUGMENTATIONS:
        raise BratsSegError(f"unknown augmentation recipe {recipe!r}; choose one of {', '.join(AUGMENTATIONS)}")
    from monai.transforms import Compose

    ts = _nnunet_transforms(dims, affine_prob) if recipe == "nnunet" else _basic_transforms(dims, affine_prob)
    comp = Compose(ts)
    comp.set_random_state(seed=seed)
    return comp


def _basic_transforms(dims: int, affine_prob: float) -> list[Any]:
    from monai.transforms import RandAffined, RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    keys = ["image", "label"]
    ts: list[Any] = [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(dims)]
    ts += [RandScaleIntensityd("image", factors=0.1, prob=0.5),
           RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
    if affine_prob > 0:
        ts.append(RandAffined(keys, prob=affine_prob, rotate_range=[0.1] * (3 if dims == 3 else 1),
                              scale_range=[0.1] * dims, mode=("bilinear", "nearest"),
                              padding_mode="zeros"))
    return ts


def _nnunet_transforms(dims: int, affine_prob: float) -> list[Any]:
    from monai.transforms import (
        RandAdjustContrastd,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        RandSimulateLowResolutiond,
        RandStdShiftIntensityd,
    )

    keys = ["image", "label"]
    ts: list[Any] = []
    if affine_prob > 0:
        ts.append(RandAffined(keys, prob=affine_prob, rotate_range=[0.52] * (3 if dims == 3 else 1),
                              scale_range=[(-0.3, 0.4)] * dims, mode=("bilinear", "nearest"),
                              padding_mode="zeros"))
    ts += [RandGaussianNoised("image", prob=0.1, mean=0.0, std=0.1),
           RandGaussianSmoothd("image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=0.2),
           RandScaleIntensityd("image", factors=0.25, prob=0.15),
           RandStdShiftIntensityd("image", factors=0.1, prob=0.15, nonzero=True)]
    if dims == 3:
        ts.append(RandSimulateLowResolutiond("image", prob=0.25, zoom_range=(0.5, 1.0)))
    ts.append(RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True))
    ts += [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(dims)]
    return ts
