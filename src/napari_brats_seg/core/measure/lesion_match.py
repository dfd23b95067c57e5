"""Enhancing lesions of two time points matched by overlap on one grid; new and vanished lesions.

Lesions are the 3D components of enhancing tumour (26-connectivity), numbered as :mod:`.rano` numbers
them (by decreasing product), so a lesion's id is the one ``brats-seg measure`` prints for that scan.
Two lesions match when they share at least one voxel once both lie on the baseline grid; lesions that
split or merge form one group (several ids on a side). A follow-up lesion overlapping no earlier
lesion is **new**; an earlier lesion overlapping no follow-up lesion has **vanished**.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..lesionwise import CONNECTIVITY_26
from .rano import LesionMeasurement, RegionMeasurement


def component_ids(internal: np.ndarray, et: RegionMeasurement) -> np.ndarray:
    """An int32 map of each enhancing lesion's id (as in ``et.lesions``), 0 elsewhere.

    The components of ``internal``'s enhancing tumour are paired with the measured lesions by voxel
    count, slice count and measured slice (and a caliper end when that leaves a tie).
    """
    cc, n = ndimage.label(np.asarray(internal) == lab.ENHANCING, structure=CONNECTIVITY_26)
    out = np.zeros(cc.shape, np.int32)
    if n == 0:
        return out
    counts = np.bincount(cc.ravel())
    boxes = ndimage.find_objects(cc)
    voxel_ml = float(np.prod(et.spacing)) / 1000.0
    free = set(range(1, n + 1))
    for les in et.lesions:
        k = _component_of(les, cc, counts, boxes, free, voxel_ml)
        free.discard(k)
        out[boxes[k - 1]][cc[boxes[k - 1]] == k] = les.id
    return out


def _component_of(les: LesionMeasurement, cc: np.ndarray, counts: np.ndarray, boxes: list, free: set[int],
                  voxel_ml: float) -> int:
    voxels = int(round(les.volume_ml / voxel_ml))
    cands = [k for k in sorted(free) if counts[k] == voxels and boxes[k - 1][0].start <= les.slice
             < boxes[k - 1][0].stop and boxes[k - 1][0].stop - boxes[k - 1][0].start >= les.n_slices]
    if len(cands) > 1 and les.long is not None:
        hit = [k for k in cands if k in (cc[les.slice][les.long.start], cc[les.slice][les.long.end])]
        cands = hit or cands
    if not cands:  # pragma: no cover - the measurement labels the same components
        raise RuntimeError(f"lesion {les.id} matches no component")
    return cands[0]


@dataclass
class LesionChange:
    """One group of matched lesions (or one new or vanished lesion).

    Attributes
    ----------
    status
        ``"matched"``, ``"split"``, ``"merged"``, ``"new"`` or ``"vanished"``.
    before, after
        Lesion ids at the earlier and the later time point.
    product_before, product_after
        Sum of the group's products (mm²) at each time point.
    measurable_after
        Whether any of the later lesions is RANO-measurable.
    overlap_voxels
        Shared voxels on the baseline grid.
    """

    status: str
    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    product_before: float = 0.0
    product_after: float = 0.0
    measurable_after: bool = False
    overlap_voxels: int = 0

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"status": self.status, "before": self.before, "after": self.after,
                "product_before_mm2": round(self.product_before, 1), "product_after_mm2": round(self.product_after, 1),
                "measurable_after": self.measurable_after, "overlap_voxels": self.overlap_voxels}


def match_lesions(before_ids: np.ndarray, after_ids: np.ndarray, before: RegionMeasurement,
                  after: RegionMeasurement) -> list[LesionChange]:
    """Group the lesions of two id maps on one grid by overlap (see the module docstring)."""
    a, b = np.asarray(before_ids).ravel(), np.asarray(after_ids).ravel()
    both = (a > 0) & (b > 0)
    pairs, n_shared = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(x: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for les in before.lesions:
        find(("b", les.id))
    for les in after.lesions:
        find(("a", les.id))
    shared: dict[tuple[str, int], int] = {}
    for i, j in pairs.T.tolist():
        parent[find(("b", i))] = find(("a", j))
    for (i, _), c in zip(pairs.T.tolist(), n_shared.tolist(), strict=True):
        shared[find(("b", i))] = shared.get(find(("b", i)), 0) + c
    groups: dict[tuple[str, int], LesionChange] = {}
    prod_b = {les.id: les for les in before.lesions}
    prod_a = {les.id: les for les in after.lesions}
    for side, ids in (("b", prod_b), ("a", prod_a)):
        for i in ids:
            g = groups.setdefault(find((side, i)), LesionChange("matched"))
            (g.before if side == "b" else g.after).append(i)
    for root, g in groups.items():
        g.overlap_voxels = shared.get(root, 0)
        g.product_before = sum(prod_b[i].product_mm2 for i in g.before)
        g.product_after = sum(prod_a[i].product_mm2 for i in g.after)
        g.measurable_after = any(prod_a[i].measurable for i in g.after)
        g.status = _status(len(g.before), len(g.after))
    out = list(groups.values())
    out.sort(key=lambda g: (min(g.before) if g.before else 10 ** 9, min(g.after) if g.after else 10 ** 9))
    return out


def _status(n_before: int, n_after: int) -> str:
    if not n_before:
        return "new"
    if not n_after:
        return "vanished"
    if n_before > 1:
        return "merged"
    return "split" if n_after > 1 else "matched"
