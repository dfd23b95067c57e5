"""One time point of a comparison: its labels, grid and registration image, read from disk or memory.

A time point is a case (a folder or BraTS-named file: its images are read for the registration, its
labels are its own ``seg`` file or the one given), or a label map alone (no images: it can only be
compared with time points on the identical grid, without registration).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..case import Case
from ..errors import CaseError
from ..geometry import Geometry

#: Sequences used for the registration, in order of preference.
REGISTRATION_SEQUENCES = ("t1ce", "flair")
_SWAP = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)


@dataclass
class TimePoint:
    """One scan to compare.

    Attributes
    ----------
    name
        The case id (or the labels file's stem).
    labels
        Internal-class label map, internal ``(z, y, x)`` order.
    geometry
        The labels' grid.
    image, image_name
        The registration sequence on the same grid (internal order), and its name; None for labels alone.
    brain_ml
        Brain volume (voxels where any sequence is non-zero), None without images.
    source
        The labels file, when read from one.
    """

    name: str
    labels: np.ndarray
    geometry: Geometry
    image: np.ndarray | None = None
    image_name: str | None = None
    brain_ml: float | None = None
    source: str | None = None

    @classmethod
    def from_case(cls, case: Case, labels: np.ndarray | None = None, *, sequence: str | None = None,
                  source: str | os.PathLike | None = None) -> TimePoint:
        """A time point of a case in memory (its ground truth unless ``labels`` is given)."""
        lab_map = case.ground_truth if labels is None else np.asarray(labels)
        if lab_map is None:
            raise CaseError(f"case {case.case_id} has no label map: give one", source)
        if tuple(lab_map.shape) != tuple(case.shape):
            raise CaseError(f"labels of shape {lab_map.shape} do not lie on case {case.case_id} {case.shape}", source)
        names = [sequence] if sequence else list(REGISTRATION_SEQUENCES)
        name = next((n for n in names if n in case.images), None)
        if name is None:
            raise CaseError(f"case {case.case_id} has no {' or '.join(names)} to register with", source)
        src = source if source is not None else case.gt_path if labels is None else None
        return cls(case.case_id, np.asarray(lab_map, np.uint8), case.geometry, case.images[name], name,
                   float(np.count_nonzero(case.brain_mask())) * case.voxel_volume_ml,
                   None if src is None else str(src))

    def image_nifti(self) -> Any:
        """The registration image as a nibabel image (internal array transposed, LPS voxel axes)."""
        import nibabel as nib

        if self.image is None:
            raise CaseError(f"{self.name}: no images, only labels")
        return nib.Nifti1Image(np.ascontiguousarray(self.image.transpose(2, 1, 0), np.float32), self.grid_affine)

    @property
    def grid_affine(self) -> np.ndarray:
        """Affine of the internal array transposed to ``(x, y, z)`` (what :func:`..clinical.register.resample` takes)."""
        return self.geometry.internal_affine @ _SWAP

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Shape of the internal array transposed to ``(x, y, z)``."""
        z, y, x = self.geometry.internal_shape
        return (x, y, z)


def load_time_point(source: str | os.PathLike | TimePoint | Case, labels: str | os.PathLike | None = None, *,
                    sequence: str | None = None, scheme: str | None = None) -> TimePoint:
    """Read a time point: a case (folder, MSD file, BraTS-named file) or a label map alone.

    Parameters
    ----------
    source
        A case, or a label map file (a ``*_seg`` file, or any NIfTI that is no case): labels alone.
    labels
        The case's label map when not its own ``seg`` file.
    sequence
        The registration sequence (default: T1ce, else FLAIR).
    scheme
        The label scheme of the label map (detected when None).

    Raises
    ------
    CaseError
        Unreadable files, labels off the case's grid, a case without labels.
    """
    from ..io import classify_file, is_nifti_name, read_case, read_labels
    from .measurement import case_id_of_labels

    if isinstance(source, TimePoint):
        return source
    if isinstance(source, Case):
        return TimePoint.from_case(source, sequence=sequence)
    path = Path(source)
    named = classify_file(path) if path.is_file() else None
    labels_only = path.is_file() and is_nifti_name(path) and labels is None and (named is None or named[2] == "seg")
    if labels_only:
        internal, _, geo = read_labels(path, scheme=scheme)
        return TimePoint(case_id_of_labels(path), internal, geo, source=str(path))
    case = read_case(path, seg=labels, scheme=scheme)
    if case.ground_truth is None:
        raise CaseError("the case has no label map (no seg file): give one", path)
    return TimePoint.from_case(case, sequence=sequence, source=case.gt_path)
