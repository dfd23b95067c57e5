"""What the correction tools share: their error, targets (a class or a region) and bounding boxes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import labels as lab
from ..errors import BratsSegError

#: A tool's target: an internal class (1, 2, 3) or a region name (``"WT"``, ``"TC"``, ``"ET"``).
Target = int | str


class EditError(BratsSegError):
    """A correction tool cannot be applied as asked (no seeds, one outlined slice, other grid...).

    The message says what to do; the label map is left unchanged.
    """


def target_classes(target: Target) -> tuple[int, ...]:
    """The internal classes a target stands for.

    Raises
    ------
    EditError
        For a class or region that is not a tumour class or region.
    """
    if isinstance(target, str):
        if target.upper() not in lab.REGION_CLASSES:
            raise EditError(f"unknown region {target!r}; use one of {', '.join(lab.REGIONS)} or a class")
        return lab.REGION_CLASSES[target.upper()]
    cls = int(target)
    if cls not in lab.CLASS_NAMES or cls == lab.BACKGROUND:
        raise EditError(f"class {cls} is no tumour class; use one of {sorted(set(lab.CLASS_NAMES) - {0})}")
    return (cls,)


def target_name(target: Target) -> str:
    """Display name of a target (``"edema"``, ``"whole tumour"``)."""
    if isinstance(target, str):
        return lab.REGION_NAMES.get(target.upper(), target)
    return lab.CLASS_NAMES.get(int(target), str(target))


def spacing3(spacing: Sequence[float] | None) -> tuple[float, float, float]:
    """Validated ``(z, y, x)`` spacing in mm (1 mm isotropic when None)."""
    if spacing is None:
        return (1.0, 1.0, 1.0)
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or min(sp) <= 0:
        raise EditError(f"voxel spacing must be three positive numbers (mm), got {spacing!r}")
    return sp  # type: ignore[return-value]


def bbox(mask: np.ndarray, pad: Sequence[int] | int = 0) -> tuple[slice, ...] | None:
    """The bounding box of ``mask``'s True voxels grown by ``pad`` voxels per axis (clipped), or None."""
    if not mask.any():
        return None
    pads = [int(pad)] * mask.ndim if np.isscalar(pad) else [int(p) for p in pad]  # type: ignore[arg-type]
    out = []
    for ax in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != ax)
        hit = np.flatnonzero(mask.any(axis=others))
        out.append(slice(max(int(hit[0]) - pads[ax], 0), min(int(hit[-1]) + 1 + pads[ax], mask.shape[ax])))
    return tuple(out)


def mm_to_voxels(mm: float, spacing: Sequence[float]) -> tuple[int, ...]:
    """How many voxels along each axis a distance of ``mm`` covers (rounded up)."""
    return tuple(int(np.ceil(float(mm) / s)) for s in spacing)


def point_index(point: Sequence[float], shape: Sequence[int]) -> tuple[int, int, int]:
    """The voxel index of a ``(z, y, x)`` point (rounded).

    Raises
    ------
    EditError
        When the point lies outside the volume.
    """
    idx = tuple(int(round(float(p))) for p in point)
    if len(idx) != len(shape) or any(not 0 <= i < n for i, n in zip(idx, shape)):
        raise EditError(f"point {tuple(point)} lies outside the label map of shape {tuple(shape)}")
    return idx  # type: ignore[return-value]


def as_labels(labels: np.ndarray) -> np.ndarray:
    """A checked 3D label map (a view, never copied)."""
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise EditError(f"a label map must be 3D (z, y, x), got shape {arr.shape}")
    return arr
