"""The :class:`Case`: four MRI sequences in one internal orientation, with what is needed to write back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import Geometry
from .labels import SCHEMES, LabelScheme

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


def default_scheme(layout: str) -> str:
    """The label scheme a case of ``layout`` is written in by default: its own scheme for ``brats2021``,
    ``brats2023`` and ``msd`` cases, else ``brats2021``."""
    return layout if layout in SCHEMES else "brats2021"


@dataclass(frozen=True)
class CaseInfo:
    """The case header: what every layer and output made from one case shares.

    Held by the :class:`Case` (``case.info``) and by each napari layer made from it; a derived
    layer carries the same object with its own role.

    Attributes
    ----------
    case_id
        Identifier (folder or file stem).
    geometry
        The reference geometry label maps are written back into.
    layout
        ``"brats2021"``, ``"brats2023"``, ``"msd"``, ``"files"``, ``"synth"``, ``"dicom"``.
    sources
        Sequence (or ``"series"``, ``"image"``) -> the input file or folder it was read from.
    gt_path
        The ground-truth file, if any.
    gt_scheme
        Name of the scheme the ground truth is stored in, if known.
    """

    case_id: str
    geometry: Geometry
    layout: str = "files"
    sources: dict[str, str] = field(default_factory=dict)
    gt_path: str | None = None
    gt_scheme: str | None = None

    @property
    def default_scheme(self) -> str:
        """The scheme of the case's layout (:func:`default_scheme`)."""
        return default_scheme(self.layout)

    @property
    def scheme(self) -> str:
        """The scheme a label map of this case is saved in by default: the ground truth's, else the layout's."""
        return self.gt_scheme if self.gt_scheme is not None else self.default_scheme

    @property
    def input_paths(self) -> list[Path]:
        """Every input file of the case (never written over)."""
        paths = [Path(p) for p in self.sources.values()]
        if self.gt_path:
            paths.append(Path(self.gt_path))
        return paths

    @classmethod
    def of_case(cls, case: Case) -> CaseInfo:
        """The header of ``case`` as it stands (use ``case.info``, which keeps one object per case)."""
        return cls(case.case_id, case.geometry, case.layout, {m: str(p) for m, p in case.sources.items()},
                   str(case.gt_path) if case.gt_path else None,
                   case.gt_scheme.name if case.gt_scheme is not None else None)


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
    _info: tuple[tuple, CaseInfo] | None = field(default=None, init=False, repr=False, compare=False)

    def _header_key(self) -> tuple[Any, ...]:
        return (self.case_id, id(self.geometry), self.layout, tuple((m, str(p)) for m, p in self.sources.items()),
                self.gt_path, self.gt_scheme.name if self.gt_scheme is not None else None)

    @property
    def info(self) -> CaseInfo:
        """The case's :class:`CaseInfo`: one object, shared by every layer made from the case.

        Built on first use and kept while the header fields stay as they are (a case read by
        :func:`core.io.read_case` gets its ground truth after construction).
        """
        key = self._header_key()
        if self._info is None or self._info[0] != key:
            self._info = (key, CaseInfo.of_case(self))
        return self._info[1]

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
