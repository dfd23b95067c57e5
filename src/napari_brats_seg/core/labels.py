"""Label schemes, tumour regions, names and colours: the one place conventions live.

Internally every label map uses the **internal classes**::

    0 background, 1 necrotic / non-enhancing tumour core (NCR), 2 peritumoural edema (ED),
    3 enhancing tumour (ET), 4 resection cavity (RC, BraTS 2024 post-treatment only)

Files come in one of three schemes and are converted on read and on write, here and nowhere else:

============  ===========  =======  ============  ==================
scheme        necrotic     edema    enhancing     other
============  ===========  =======  ============  ==================
``brats2021`` 1            2        4             (BraTS 2018-2021)
``brats2023`` 1            2        3             4 resection cavity
``msd``       2            1        3             (MSD Task01)
``brats2013`` 1 and 3      2        4             3 non-enhancing core
============  ===========  =======  ============  ==================

``brats2013`` (BraTS 2012-2016, whose value 3 "non-enhancing core" was merged into 1 in 2017) is only
read, and only when asked for: its values {0,1,2,3,4} are the same as BraTS 2024's, with another
meaning.

Regions (as in the BraTS challenge and MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``):
whole tumour WT = NCR | ED | ET, tumour core TC = NCR | ET, enhancing tumour ET = ET. The resection
cavity belongs to no region.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import LabelSchemeError

BACKGROUND, NECROTIC, EDEMA, ENHANCING, RESECTION = 0, 1, 2, 3, 4
#: Internal classes that are tumour tissue.
TUMOUR_CLASSES = (NECROTIC, EDEMA, ENHANCING)

#: Display names of the internal classes, used in every table, layer and file.
CLASS_NAMES: dict[int, str] = {
    BACKGROUND: "background",
    NECROTIC: "necrotic core",
    EDEMA: "edema",
    ENHANCING: "enhancing tumour",
    RESECTION: "resection cavity",
}
#: Short names of the internal classes.
CLASS_KEYS: dict[int, str] = {
    BACKGROUND: "BG", NECROTIC: "NCR", EDEMA: "ED", ENHANCING: "ET", RESECTION: "RC",
}
#: RGBA colours (0-1) of the internal classes: red, green, yellow, blue (as ITK-SNAP shows BraTS).
CLASS_COLOURS: dict[int, tuple[float, float, float, float]] = {
    BACKGROUND: (0.0, 0.0, 0.0, 0.0),
    NECROTIC: (0.90, 0.10, 0.10, 1.0),
    EDEMA: (0.15, 0.80, 0.20, 1.0),
    ENHANCING: (1.00, 0.90, 0.10, 1.0),
    RESECTION: (0.20, 0.45, 1.00, 1.0),
}

#: The three evaluation regions, in the order BraTS reports them.
REGIONS = ("WT", "TC", "ET")
REGION_NAMES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}
REGION_CLASSES: dict[str, tuple[int, ...]] = {
    "WT": (NECROTIC, EDEMA, ENHANCING),
    "TC": (NECROTIC, ENHANCING),
    "ET": (ENHANCING,),
}


@dataclass(frozen=True)
class LabelScheme:
    """A file convention: which stored value means which internal class.

    Attributes
    ----------
    name
        ``"brats2021"``, ``"brats2023"`` or ``"msd"``.
    description
        Human-readable summary.
    to_internal_map
        Stored value -> internal class. Value 0 is always background.
    """

    name: str
    description: str
    to_internal_map: Mapping[int, int]

    @property
    def values(self) -> frozenset[int]:
        """The stored values this scheme allows (0 included)."""
        return frozenset(self.to_internal_map)

    @property
    def from_internal_map(self) -> dict[int, int]:
        """Internal class -> stored value."""
        return {v: k for k, v in self.to_internal_map.items()}

    def value_of(self, internal_class: int) -> int:
        """The stored value of one internal class (e.g. ``ENHANCING`` -> 4 in brats2021)."""
        try:
            return self.from_internal_map[internal_class]
        except KeyError:
            raise LabelSchemeError(
                f"the {self.name} scheme has no value for {CLASS_NAMES.get(internal_class, internal_class)}"
            ) from None


BRATS2021 = LabelScheme(
    "brats2021", "BraTS 2018-2021: 1 necrotic/non-enhancing core, 2 edema, 4 enhancing",
    {0: BACKGROUND, 1: NECROTIC, 2: EDEMA, 4: ENHANCING},
)
BRATS2023 = LabelScheme(
    "brats2023", "BraTS 2023+: 1 necrotic core, 2 edema, 3 enhancing (4 resection cavity, 2024)",
    {0: BACKGROUND, 1: NECROTIC, 2: EDEMA, 3: ENHANCING, 4: RESECTION},
)
MSD = LabelScheme(
    "msd", "MSD Task01: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour",
    {0: BACKGROUND, 1: EDEMA, 2: NECROTIC, 3: ENHANCING},
)
INTERNAL = LabelScheme(
    "internal", "internal classes: 1 necrotic, 2 edema, 3 enhancing, 4 resection cavity",
    {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
)
#: Read-only: values 3 and 1 are both necrotic / non-enhancing core (1 is written for it).
BRATS2013 = LabelScheme(
    "brats2013", "BraTS 2012-2016: 1 necrotic, 2 edema, 3 non-enhancing core, 4 enhancing",
    {0: BACKGROUND, 3: NECROTIC, 1: NECROTIC, 2: EDEMA, 4: ENHANCING},
)
SCHEMES: dict[str, LabelScheme] = {s.name: s for s in (BRATS2021, BRATS2023, MSD)}
#: Case ids of the BraTS 2015-2021 releases (Brats17_2013_2_1, BraTS19_CBICA_AAB_1,
#: BraTS20_Training_001, BraTS2021_00000): their label files never hold a resection cavity.
_RELEASE_2015_2021 = re.compile(r"^brats(1[5-9]|20)_|^brats2021_", re.I)


def get_scheme(scheme: str | LabelScheme) -> LabelScheme:
    """Return the scheme named ``scheme`` (``brats2021``, ``brats2023``, ``msd``, ``internal``)."""
    if isinstance(scheme, LabelScheme):
        return scheme
    key = str(scheme).lower().replace("-", "").replace("_", "")
    aliases = {"brats2018": "brats2021", "brats2019": "brats2021", "brats2020": "brats2021",
               "brats2024": "brats2023", "msdtask01": "msd"}
    key = aliases.get(key, key)
    if key == "internal":
        return INTERNAL
    if key in ("brats2013", "brats2012"):
        return BRATS2013
    if key not in SCHEMES:
        raise LabelSchemeError(f"unknown label scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    return SCHEMES[key]


def _lut(mapping: Mapping[int, int], fill: int) -> np.ndarray:
    lut = np.full(256, fill, dtype=np.int16)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def _apply_lut(mapping: Mapping[int, int], labels: np.ndarray) -> np.ndarray:
    """``mapping`` applied to a label map whose values are all keys of it (checked by the caller), as uint8."""
    lut = _lut(mapping, 0).astype(np.uint8)
    return lut[np.asarray(labels).astype(np.uint8, copy=False)]


def unique_values(labels: np.ndarray) -> set[int]:
    """The distinct values of an integer label map (fast for the few small values of label maps)."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise LabelSchemeError("label map has non-integer values")
        arr = arr.astype(np.int64)
    if not arr.size:
        return set()
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo < 32:  # label maps: a few small values; one vectorised comparison per candidate
        return {v for v in range(lo, hi + 1) if v in (lo, hi) or bool((arr == v).any())}
    if lo >= 0 and hi < 256:
        counts = np.bincount(arr.astype(np.uint8, copy=False).ravel(), minlength=256)
        return {int(v) for v in np.flatnonzero(counts)}
    return {int(v) for v in np.unique(arr)}


def to_internal(labels: np.ndarray, scheme: str | LabelScheme) -> np.ndarray:
    """Convert a label map stored in ``scheme`` to internal classes (uint8).

    Raises
    ------
    LabelSchemeError
        When the map holds values the scheme does not define (they are listed).
    """
    sch = get_scheme(scheme)
    found = unique_values(labels)
    bad = sorted(found - set(sch.values))
    if bad:
        raise LabelSchemeError(
            f"label values {bad} are not part of the {sch.name} scheme ({sch.description})"
        )
    return _apply_lut(sch.to_internal_map, labels)


def from_internal(labels: np.ndarray, scheme: str | LabelScheme) -> np.ndarray:
    """Convert internal classes to the values of ``scheme`` (uint8).

    Raises
    ------
    LabelSchemeError
        When a class present in the map has no value in the scheme (e.g. a resection cavity saved
        as brats2021).
    """
    sch = get_scheme(scheme)
    found = unique_values(labels)
    inv = sch.from_internal_map
    bad = sorted(found - set(inv))
    if bad:
        names = ", ".join(CLASS_NAMES.get(b, str(b)) for b in bad)
        raise LabelSchemeError(f"the {sch.name} scheme cannot store {names}")
    return _apply_lut(inv, labels)


def convert(labels: np.ndarray, src: str | LabelScheme, dst: str | LabelScheme) -> np.ndarray:
    """Convert a label map from scheme ``src`` to scheme ``dst``."""
    return from_internal(to_internal(labels, src), dst)


def region_masks(internal: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean WT, TC and ET masks of an internal-class label map."""
    lab = np.asarray(internal)
    ncr, ed, et = lab == NECROTIC, lab == EDEMA, lab == ENHANCING
    tc = ncr | et
    return {"WT": tc | ed, "TC": tc, "ET": et}


def regions_to_labels(wt: np.ndarray, tc: np.ndarray, et: np.ndarray) -> np.ndarray:
    """Merge (possibly inconsistent) region masks into internal classes, keeping ET in TC in WT.

    A voxel in ET is enhancing; else in TC necrotic; else in WT edema. ET and TC therefore imply WT,
    as the BraTS region hierarchy requires.
    """
    out = np.zeros(np.shape(wt), dtype=np.uint8)
    out[np.asarray(wt, bool)] = EDEMA
    out[np.asarray(tc, bool)] = NECROTIC
    out[np.asarray(et, bool)] = ENHANCING
    return out


@dataclass(frozen=True)
class SchemeDetection:
    """Result of :func:`detect_scheme`.

    Attributes
    ----------
    scheme
        The scheme, or ``None`` when the evidence is ambiguous.
    candidates
        Every scheme consistent with the values (and naming).
    reason
        Why this answer, in words.
    has_resection_cavity
        True when value 4 was read as a BraTS 2024 resection cavity.
    """

    scheme: LabelScheme | None
    candidates: tuple[LabelScheme, ...]
    reason: str
    has_resection_cavity: bool = False


def _release_conflict(vals: set[int], case_id: str, cands: tuple[LabelScheme, ...]) -> SchemeDetection:
    """The answer for values 3 and 4 in a case named like a BraTS 2015-2021 release: ask."""
    return SchemeDetection(
        None, cands + (BRATS2013,),
        f"ambiguous label scheme: values {sorted(vals)} disagree with the case name {case_id!r}, a BraTS "
        f"2015-2021 release name (4 = enhancing tumour there): read by the names this is brats2013 "
        f"(BraTS 2012-2016: 3 = non-enhancing core, 4 = enhancing tumour), read by the values it is brats2023 / BraTS 2024 "
        f"(3 = enhancing tumour, 4 = resection cavity); the enhancing tumours differ, so choose the "
        f"scheme explicitly (brats2013 or brats2023)")


def detect_scheme(values: Iterable[int] | np.ndarray, layout: str | None = None,
                  case_id: str | None = None) -> SchemeDetection:
    """Guess the label scheme of a label map from its values and, when known, its file layout.

    Parameters
    ----------
    values
        The label map itself or the set of its distinct values.
    layout
        The case layout the file came with (``"brats2021"``, ``"brats2023"``, ``"msd"``) or None.
    case_id
        The case's id, when known: values 3 and 4 in a case named like a BraTS 2015-2021 release
        (``Brats18_...``) are two readings (2012-2016's non-enhancing core or 2024's resection cavity),
        so the answer is None and the caller must ask.

    Returns
    -------
    SchemeDetection
        ``scheme`` is None when several schemes fit and nothing decides between them: then the
        caller must ask the user.

    Raises
    ------
    LabelSchemeError
        When the values fit no scheme at all.
    """
    vals = unique_values(values) if isinstance(values, np.ndarray) else {int(v) for v in values}
    cands = tuple(s for s in (BRATS2021, BRATS2023, MSD) if vals <= s.values)
    if not cands:
        raise LabelSchemeError(
            f"label values {sorted(vals)} fit no known scheme (brats2021 0/1/2/4, brats2023 0/1/2/3/4, msd 0/1/2/3)"
        )
    note = ""
    if case_id and 3 in vals and 4 in vals and _RELEASE_2015_2021.match(case_id):
        return _release_conflict(vals, case_id, cands)
    if layout is not None:
        lay = get_scheme(layout)
        if lay in cands:
            rc = lay is BRATS2023 and 4 in vals
            why = f"values {sorted(vals)} fit the {lay.name} file layout"
            if rc:
                why += "; value 4 read as a BraTS 2024 resection cavity"
            return SchemeDetection(lay, cands, why, rc)
        note = f" (they do not fit the {lay.name} naming of the files)"
    if 3 in vals and 4 in vals:
        return SchemeDetection(BRATS2023, cands, "values 3 and 4: BraTS 2024, value 4 read as a resection cavity",
                               True)
    if 4 in vals:
        return SchemeDetection(BRATS2021, cands, "value 4 without 3: BraTS 2018-2021 enhancing tumour")
    if len(cands) == 1:
        return SchemeDetection(cands[0], cands, f"only {cands[0].name} allows values {sorted(vals)}")
    # Values within {0,1,2,3}: brats2023 and msd disagree on 1/2; {0,1,2} also fits brats2021.
    if vals <= {0}:
        return SchemeDetection(BRATS2023, cands, "empty label map: any scheme reads it the same")
    return SchemeDetection(
        None, cands,
        f"ambiguous label scheme: values {sorted(vals)}{note} fit "
        f"{', '.join(c.name for c in cands)}; choose the scheme explicitly",
    )
