"""The :class:`Case`: four MRI sequences in one internal orientation, with what is needed to write back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geometry import Geometry
from .labels import LabelScheme

#: Canonical modality names, in the project's default channel order.
MODALITIES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
#: Display names of the modalities.
MODALITY_NAMES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
#: Every spelling we accept for a modality (file suffixes, MSD channel names, bundle channel names).
MODALITY_ALIASES: dict[str, str] = {
    "t1": "t1", "t1n": "t1", "t1w": "t1", "t1native": "t1",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1post": "t1ce", "t1contrast": "t1ce",
    "t2": "t2", "t2w": "t2",
    "flair": "flair", "t2f": "flair", "t2flair": "flair",
}


def canonical_modality(name: str) -> str:
    """The canonical name (``t1``, ``t1ce``, ``t2``, ``flair``) of a modality spelling.

    Raises
    ------
    KeyError
        For a name that is no known spelling of the four sequences.
    """
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    if key not in MODALITY_ALIASES:
        raise KeyError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITY_ALIASES))}")
    return MODALITY_ALIASES[key]


@dataclass
class Case:
    """One patient's study, ready for models and viewers.

    Attributes
    ----------
    case_id
        Identifier (folder or file stem), e.g. ``Brats18_2013_11_1``.
    images
        Modality name -> float32 array in internal ``(z, y, x)`` LPS order. Keys are canonical names.
    geometry
        The reference geometry (of the first modality) that label maps are written back into.
    layout
        ``"brats2021"``, ``"brats2023"``, ``"msd"``, ``"files"`` (explicit files) or ``"synth"``
        (made in memory by :func:`napari_brats_seg.core.synth.synth_case`).
    sources
        Modality name -> the file it was read from (for MSD, the same 4D file four times).
    file_geometries
        Modality name -> that file's own geometry (affine and header as read).
    ground_truth
        Internal-class label map (uint8, ``(z, y, x)``) or None.
    gt_scheme
        The scheme the ground-truth file was stored in, to write it back the same way.
    gt_path
        The ground-truth file, if any.
    gt_note
        How the ground truth's scheme was decided (e.g. that value 4 was read as a BraTS 2024
        resection cavity), or None.
    """

    case_id: str
    images: dict[str, np.ndarray] = field(repr=False)
    geometry: Geometry
    layout: str = "files"
    sources: dict[str, Path] = field(default_factory=dict)
    file_geometries: dict[str, Geometry] = field(default_factory=dict, repr=False)
    ground_truth: np.ndarray | None = field(default=None, repr=False)
    gt_scheme: LabelScheme | None = None
    gt_path: Path | None = None
    gt_note: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Internal ``(z, y, x)`` shape."""
        return self.geometry.internal_shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm along the internal ``(z, y, x)`` axes."""
        return self.geometry.spacing

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def input_paths(self) -> set[Path]:
        """Every file the case was read from (resolved): these are never written over."""
        paths = {Path(p).resolve() for p in self.sources.values()}
        if self.gt_path is not None:
            paths.add(Path(self.gt_path).resolve())
        return paths

    def stack(self, order: tuple[str, ...] | list[str] = MODALITIES) -> np.ndarray:
        """The modalities as one ``(C, z, y, x)`` float32 array in the given channel order.

        Raises
        ------
        KeyError
            Naming the modality the case lacks.
        """
        names = [canonical_modality(m) for m in order]
        missing = [m for m in names if m not in self.images]
        if missing:
            raise KeyError(f"case {self.case_id} has no {', '.join(missing)} (has {', '.join(self.images)})")
        return np.stack([self.images[m] for m in names]).astype(np.float32, copy=False)

    def brain_mask(self) -> np.ndarray:
        """A voxel is brain where any sequence is non-zero (the BraTS convention)."""
        mask = np.zeros(self.shape, dtype=bool)
        for arr in self.images.values():
            mask |= arr != 0
        return mask
