"""Two or more time points compared: SPD and volume change, lesions matched, the RANO category suggested.

:func:`compare` takes the time points in the order given (baseline first). Each follow-up is
registered rigidly onto the baseline (:mod:`.pair_registration`), its labels brought onto the
baseline grid (nearest neighbour) to match lesions by overlap with the time point before it
(:mod:`.lesion_match`). SPD and volumes of each scan are measured on its own grid (the numbers
``brats-seg measure`` gives for it).

The RANO category of the SPD rule (a suggestion, with its reasoning):

- **PD**: a new measurable enhancing lesion, or SPD >= +25 % against the nadir (the smallest SPD of the
  earlier time points, baseline included; an earlier scan without measurable disease counts 0 mm², and
  measurable disease after a nadir of 0 is PD);
- **CR**: no enhancing tumour left at all (neither measurable nor non-measurable);
- **PR**: SPD <= -50 % against the baseline (no measurable lesion left counts 0 mm²);
- **SD** otherwise. Without measurable disease at baseline only SD or PD can be said; without any enhancing
  tumour at baseline nothing but PD (a new measurable lesion).

The non-measurement criteria (:data:`READER_TO_JUDGE`) are not computed: they are the reader's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import CaseError
from ..progress import CancelToken, ProgressCallback, check, report
from .lesion_match import LesionChange, component_ids, match_lesions
from .measurement import CaseMeasurement, measure_labels
from .pair_registration import REGISTRATION_SPACING, PairRegistration, onto_baseline, register_pair
from .timepoint import TimePoint, load_time_point
from .volumes import VOLUME_KEYS

PD_NADIR_PCT = 25.0
PR_BASELINE_PCT = -50.0
#: What RANO needs beyond the enhancing-tumour measurement: for the reader to judge.
READER_TO_JUDGE = (
    ("T2/FLAIR non-enhancing lesion: a significant increase is PD even with a stable SPD; CR and PR need it "
    "stable or improved (the ED and WT volume change is shown, but its significance is the reader's)"),
    ("corticosteroids: CR needs the patient off steroids (physiological doses aside), PR/SD a dose not above baseline; "
    "a dose increase alone is not PD"),
    ("clinical state: clinical deterioration not attributable to other causes is PD; CR/PR need a stable or "
    "improved clinical state"),
    ("confirmation: CR and PR must persist on a scan at least 4 weeks later; early enlargement after radiotherapy "
    "(pseudoprogression, within 12 weeks) needs confirmation before PD"),
    ("non-measurable and new lesions: unequivocal progression of non-measurable disease is PD; whether a new "
    "lesion is tumour (and not e.g. a treatment effect) is the reader's"),
)


@dataclass
class Category:
    """The RANO category the SPD rule gives: a suggestion, with its reasoning."""

    suggestion: str
    reasons: list[str]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"suggestion": self.suggestion, "reasons": list(self.reasons),
                "note": "a suggestion from the enhancing-tumour measurement only; see reader_to_judge"}


@dataclass
class FollowUp:
    """One follow-up against the baseline, the nadir and the time point before it."""

    index: int
    registration: PairRegistration
    lesions: list[LesionChange]
    spd: dict
    volumes: dict[str, dict]
    category: Category

    @property
    def new_measurable(self) -> list[LesionChange]:
        """New lesions of which one at least is measurable."""
        return [g for g in self.lesions if g.status == "new" and g.measurable_after]


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    points: list[TimePoint]
    measurements: list[CaseMeasurement]
    followups: list[FollowUp]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON of ``brats-seg compare --json``."""
        pts = [{"index": i, "name": p.name, "labels": p.source, "registration_image": p.image_name,
                "brain_ml": None if p.brain_ml is None else round(p.brain_ml, 1),
                "spd_mm2": None if m.et.spd_mm2 is None else round(m.et.spd_mm2, 1), "status": m.et.status,
                "lesion_count": dict(m.lesion_count), "volumes_ml": {k: round(v, 3) for k, v in m.volumes_ml.items()}}
               for i, (p, m) in enumerate(zip(self.points, self.measurements, strict=True))]
        fus = [{"index": f.index, "name": self.points[f.index].name, "registration": f.registration.to_dict(),
                "spd": f.spd, "volumes": f.volumes, "lesions": [g.to_dict() for g in f.lesions],
                "new_lesions": sum(g.status == "new" for g in f.lesions),
                "new_measurable_lesions": len(f.new_measurable),
                "vanished_lesions": sum(g.status == "vanished" for g in f.lesions),
                "category": f.category.to_dict()} for f in self.followups]
        return {"baseline": self.points[0].name, "time_points": pts, "followups": fus,
                "rules": {"PD": f"SPD >= +{PD_NADIR_PCT:g} % vs nadir, or a new measurable lesion",
                          "PR": f"SPD <= {PR_BASELINE_PCT:g} % vs baseline", "CR": "no enhancing tumour left",
                          "SD": "otherwise", "lesions": "3D components of enhancing tumour, matched by overlap on "
                          "the baseline grid with the time point before"},
                "reader_to_judge": list(READER_TO_JUDGE), "warnings": list(self.warnings), "notes": list(self.notes)}


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return round(100.0 * (new - old) / old, 1)


def spd_change(spds: Sequence[float | None], k: int) -> dict:
    """SPD of time point ``k`` against the baseline and the nadir of the points before it (None counts 0)."""
    vals = [0.0 if s is None else float(s) for s in spds]
    earlier = vals[:k]
    nadir_i = int(np.argmin(earlier))
    return {"baseline_mm2": spds[0] if spds[0] is None else round(spds[0], 1),
            "current_mm2": spds[k] if spds[k] is None else round(spds[k], 1),
            "change_vs_baseline_pct": _pct(vals[k], vals[0]), "nadir_mm2": round(earlier[nadir_i], 1),
            "nadir_index": nadir_i, "change_vs_nadir_pct": _pct(vals[k], earlier[nadir_i])}


def volume_change(base: dict[str, float], cur: dict[str, float]) -> dict[str, dict]:
    """Each volume at baseline and now, the change in mL and %."""
    return {k: {"baseline_ml": round(base[k], 3), "current_ml": round(cur[k], 3),
                "change_ml": round(cur[k] - base[k], 3), "change_pct": _pct(cur[k], base[k])} for k in VOLUME_KEYS}


def categorize(spd: dict, base: CaseMeasurement, cur: CaseMeasurement, new_measurable: int) -> Category:
    """The RANO category of the SPD rule (see the module docstring), with its reasons in words."""
    why: list[str] = []
    if new_measurable:
        why.append(f"{new_measurable} new measurable enhancing lesion{'s' * (new_measurable > 1)}")
    nadir_pct, base_pct = spd["change_vs_nadir_pct"], spd["change_vs_baseline_pct"]
    cur_spd = spd["current_mm2"] or 0.0
    if nadir_pct is not None and nadir_pct >= PD_NADIR_PCT:
        why.append(f"SPD {nadir_pct:+.1f} % vs the nadir {spd['nadir_mm2']:.1f} mm² (>= +{PD_NADIR_PCT:g} %)")
    elif spd["nadir_mm2"] == 0 and cur_spd > 0:
        why.append(f"measurable enhancing disease (SPD {cur_spd:.1f} mm²) after a nadir without any")
    if why:
        return Category("PD", why)
    if not base.et.lesions:
        return Category("not assessable", [
            ("no enhancing tumour at baseline: no measurable disease, the SPD rule gives no response category "
            "(only a new measurable lesion would be PD)")])
    if not cur.et.lesions:
        return Category("CR", ["no enhancing tumour left (neither measurable nor non-measurable); no new lesion"])
    if base.et.spd_mm2 is None:
        return Category("SD", [("no measurable disease at baseline (non-measurable only): only SD or PD can be said; "
                               "no new measurable lesion, no measurable growth")])
    if base_pct is not None and base_pct <= PR_BASELINE_PCT:
        left = "" if cur.et.spd_mm2 is not None else " (no measurable lesion left; non-measurable enhancement remains)"
        return Category("PR", [f"SPD {base_pct:+.1f} % vs baseline (<= {PR_BASELINE_PCT:g} %){left}"])
    return Category("SD", [(f"SPD {base_pct:+.1f} % vs baseline (PR needs <= {PR_BASELINE_PCT:g} %) and "
                           f"{(nadir_pct or 0):+.1f} % vs nadir (PD needs >= +{PD_NADIR_PCT:g} %); "
                           "no new measurable lesion")])


def compare(baseline: object, followup: object, *more: object, labels: Sequence[object | None] | None = None,
            sequence: str | None = None, scheme: str | None = None, registration_spacing: float | None = REGISTRATION_SPACING,
            on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Comparison:
    """Compare time points, in the order given (the first is the baseline).

    Parameters
    ----------
    baseline, followup, more
        Each a case (folder, BraTS-named file, :class:`..case.Case`), a label map file alone, or a
        :class:`.TimePoint`.
    labels
        One label map (or None: the case's own) per time point.
    sequence
        The registration sequence (default: T1ce, else FLAIR).
    scheme
        The label scheme of every label map (detected per file when None).
    registration_spacing
        Spacing (mm) the images are block-averaged to for the registration; None: full resolution.

    Raises
    ------
    CaseError
        Unreadable input, empty labels, labels alone on different grids, different registration sequences.
    """
    sources = [baseline, followup, *more]
    labels = list(labels) if labels is not None else [None] * len(sources)
    if len(labels) != len(sources):
        raise ValueError(f"{len(labels)} label maps given for {len(sources)} time points")
    n_steps = 3 * len(sources)
    points, meas = [], []
    for i, (src, lab_file) in enumerate(zip(sources, labels, strict=True)):
        check(cancel)
        report(on_progress, i, n_steps, f"reading time point {i + 1}")
        p = load_time_point(src, lab_file, sequence=sequence, scheme=scheme)  # type: ignore[arg-type]
        points.append(p)
        try:
            meas.append(measure_labels(p.labels, p.geometry, case_id=p.name, source=p.source))
        except CaseError as exc:
            which = "baseline" if i == 0 else f"follow-up {i}"
            raise CaseError(f"{which} ({p.name}): {exc}") from None
    ids = [component_ids(points[0].labels, meas[0].et)]
    out = Comparison(points, meas, [])
    spds = [m.et.spd_mm2 for m in meas]
    for k in range(1, len(points)):
        check(cancel)
        report(on_progress, len(points) + 2 * (k - 1), n_steps, f"registering time point {k + 1}")
        reg = register_pair(points[0], points[k], spacing_mm=registration_spacing,
                            on_iteration=(lambda _i: check(cancel)) if cancel is not None else None)
        ids.append(onto_baseline(points[0], points[k], reg, component_ids(points[k].labels, meas[k].et)))
        groups = match_lesions(ids[k - 1], ids[k], meas[k - 1].et, meas[k].et)
        spd = spd_change(spds, k)
        new_m = sum(g.status == "new" and g.measurable_after for g in groups)
        cat = categorize(spd, meas[0], meas[k], new_m)
        if reg.warnings:
            cat.reasons.append("CAUTION: the registration is in doubt (see the warnings), so are the new and "
                               "vanished lesions")
        fu = FollowUp(k, reg, groups, spd, volume_change(meas[0].volumes_ml, meas[k].volumes_ml), cat)
        out.followups.append(fu)
        out.warnings += reg.warnings
        out.notes += reg.notes
    if not meas[0].et.lesions:
        out.notes.append(f"no enhancing tumour at baseline ({points[0].name}): no measurable disease")
    elif meas[0].et.spd_mm2 is None:
        out.notes.append(f"no measurable enhancing lesion at baseline ({points[0].name}): non-measurable disease only")
    report(on_progress, n_steps, n_steps, "compared")
    return out
