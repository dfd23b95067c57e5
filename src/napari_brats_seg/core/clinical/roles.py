"""Which series is T1, T1ce, T2 and FLAIR: a guess from the headers, with its reason and confidence.

Evidence, strongest first:

- the series description, in the vendors' usual words (Siemens ``t1_mprage``, ``t2_tse``,
  ``t2_tirm``/``darkfluid`` for FLAIR; GE ``Ax T1 +C``, ``FSPGR``, ``BRAVO``; Philips ``T1W``,
  ``T2W``, ``FLAIR``, ``T1W_3D_TFE``; post-contrast words ``+C``, ``C+``, ``GD``, ``GAD``, ``POST``,
  ``CE``, ``CONTRAST``, ``KM``);
- the physics: FLAIR = inversion recovery with TI >= 1500 ms and TR >= 4000 ms; T2 = TR >= 2000 ms
  and TE >= 60 ms; T1 = TR < 1000 ms and TE < 30 ms (spin echo) or a 3D gradient echo with TE < 10 ms;
- the contrast-agent tags (ContrastBolusAgent and friends);
- the order in time: of two T1 series with no contrast evidence, the later one is the more likely
  post-contrast acquisition, but that is a judgement: such a guess is ``"low"`` confidence and
  :attr:`RoleGuess.needs_confirmation` asks the user to confirm it.

Localizers, derived images and single slices never get a role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .dicom import SeriesInfo, Study

ROLES = ("t1", "t1ce", "t2", "flair")
_CONTRAST_WORDS = re.compile(r"(\+c\b|\bc\+|\bgd\b|gado|\bgad\b|\bpost\b|\bce\b|contrast|\bkm\b|\+gd|_gd|t1c\b)")
_FLAIR_WORDS = re.compile(r"(flair|tirm|darkfluid|dark_fluid|dark-fluid)")
_T2_WORDS = re.compile(r"(t2|tse.*t2|t2w)")
_T1_WORDS = re.compile(r"(t1|mprage|spgr|fspgr|bravo|tfe|vibe|flash)")


@dataclass
class Choice:
    """One role's series, with why and how sure."""

    series: SeriesInfo | None
    reason: str
    confidence: str  # "high", "medium", "low" or "none"
    alternatives: list[SeriesInfo] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: series number/description, reason, confidence, the other candidates."""
        s = self.series
        return {"series": s.number if s else None, "description": s.description if s else None,
                "uid": s.uid if s else None, "reason": self.reason, "confidence": self.confidence,
                "alternatives": [a.number for a in self.alternatives]}


@dataclass
class RoleGuess:
    """The four roles' choices."""

    roles: dict[str, Choice]

    @property
    def needs_confirmation(self) -> list[str]:
        """The roles whose choice the user must confirm (low confidence, ambiguous, or missing)."""
        return [r for r, c in self.roles.items() if c.confidence in ("low", "none") or c.alternatives]

    def describe(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"roles": {r: c.describe() for r, c in self.roles.items()},
                "needs_confirmation": self.needs_confirmation}


def weighting(s: SeriesInfo) -> tuple[str | None, str, str]:
    """``(kind, reason, confidence)``: kind is ``"flair"``, ``"t2"``, ``"t1"`` or None."""
    desc = s.description.lower()
    tr, te, ti = s.repetition_time, s.echo_time, s.inversion_time
    ir = "IR" in (s.scanning_sequence or "")
    phys_flair = ti is not None and ti >= 1500 and (tr or 0) >= 4000
    phys_t2 = tr is not None and te is not None and tr >= 2000 and te >= 60 and not phys_flair
    gre3d = (s.acquisition_type == "3D") and te is not None and te < 10
    phys_t1 = tr is not None and te is not None and ((tr < 1000 and te < 30) or gre3d)
    physics = f"TR {tr:g} / TE {te:g}" + (f" / TI {ti:g}" if ti else "") + " ms" if tr and te else "no TR/TE"
    if _FLAIR_WORDS.search(desc):
        return "flair", f"description {s.description!r}; {physics}", "high" if phys_flair or ir else "medium"
    if phys_flair:
        return "flair", f"inversion recovery, {physics}", "medium"
    if _T2_WORDS.search(desc) and not _T1_WORDS.search(desc.replace("t2", "")):
        return "t2", f"description {s.description!r}; {physics}", "high" if phys_t2 else "medium"
    if phys_t2:
        return "t2", physics, "medium"
    if _T1_WORDS.search(desc):
        return "t1", f"description {s.description!r}; {physics}", "high" if phys_t1 else "medium"
    if phys_t1:
        return "t1", physics, "medium"
    return None, physics, "none"


def _contrast(s: SeriesInfo) -> str | None:
    if s.contrast_agent:
        return f"contrast agent tag {s.contrast_agent!r}"
    if _CONTRAST_WORDS.search(s.description.lower()):
        return f"post-contrast word in {s.description!r}"
    return None


def _rank_key(s: SeriesInfo) -> tuple:
    """Prefer 3D, thin slices, more slices, then the earlier series."""
    return (s.acquisition_type != "3D", s.slice_thickness or 99.0, -len(s.frames), s.number or 0)


def _pick(cands: list[SeriesInfo], reason: str, confidence: str) -> Choice:
    """The best-ranked candidate, the others as alternatives."""
    if not cands:
        return Choice(None, reason, "none")
    ranked = sorted(cands, key=_rank_key)
    return Choice(ranked[0], reason, confidence, ranked[1:])


def guess_roles(study: Study) -> RoleGuess:
    """Guess the four sequence roles of a study (see the module docstring for the evidence)."""
    kinds: dict[str, list[tuple[SeriesInfo, str, str]]] = {"t1": [], "t2": [], "flair": []}
    for s in study.image_series():
        kind, reason, conf = weighting(s)
        if kind:
            kinds[kind].append((s, reason, conf))
    roles = {}
    order = ("high", "medium", "low", "none")
    for role in ("t2", "flair"):
        found = sorted(kinds[role], key=lambda f: (order.index(f[2]), _rank_key(f[0])))
        if not found:
            roles[role] = Choice(None, f"no {role.upper()} series found", "none")
            continue
        (best, reason, conf), others = found[0], [f[0] for f in found[1:]]
        if others:
            reason += f"; {len(found)} candidates, the most certain then 3D/thinnest first"
        roles[role] = Choice(best, reason, conf, others)
    roles["t1"], roles["t1ce"] = _t1_pair([s for s, _, _ in kinds["t1"]])
    return RoleGuess({r: roles[r] for r in ROLES})


def _t1_pair(t1s: list[SeriesInfo]) -> tuple[Choice, Choice]:
    if not t1s:
        none = Choice(None, "no T1-weighted series found", "none")
        return none, Choice(None, "no T1-weighted series found", "none")
    post = [s for s in t1s if _contrast(s)]
    pre = [s for s in t1s if not _contrast(s)]
    if post:
        ce = _pick(post, _contrast(sorted(post, key=_rank_key)[0]) or "", "high")
        t1 = _pick(pre, "T1-weighted without contrast evidence", "medium") if pre else \
            Choice(None, "every T1 series shows contrast evidence: no pre-contrast T1 found", "none")
        return t1, ce
    if len(t1s) == 1:
        only = t1s[0]
        return (Choice(only, "the only T1-weighted series; no contrast evidence in the headers", "low"),
                Choice(None, "no series with contrast evidence (no ContrastBolusAgent tag, no post-contrast "
                             "word): which T1 is post-contrast cannot be told from the headers", "none"))
    by_time = sorted(t1s, key=lambda s: (s.acquisition_time or "", s.number or 0))
    first, later = by_time[0], by_time[1:]
    ce = sorted(later, key=_rank_key)[0]
    note = ("no contrast-agent tag or post-contrast word in any T1 series: guessed from the order in time "
            "(post-contrast series are acquired later); confirm")
    return (Choice(first, f"the earliest T1-weighted series ({first.acquisition_time}); {note}", "low",
                   [s for s in t1s if s is not first and s is not ce]),
            Choice(ce, f"a later T1-weighted series ({ce.acquisition_time}), 3D/thinnest preferred; {note}", "low",
                   [s for s in later if s is not ce]))


def assign_roles(study: Study, chosen: dict[str, str | int] | None = None) -> RoleGuess:
    """The guessed roles with the user's choices applied (``{"t1ce": "1101", ...}``).

    A chosen series is found by number or UID (:meth:`Study.find`) and gets confidence
    ``"user"``. Raises :class:`~napari_brats_seg.core.errors.CaseError` for an unknown role, a
    series that does not exist, a localizer or derived series given as a role, or one series
    given two roles.
    """
    from ..errors import CaseError

    guess = guess_roles(study)
    chosen = dict(chosen or {})
    for role, key in chosen.items():
        if role not in ROLES:
            raise CaseError(f"unknown sequence role {role!r} (roles: {', '.join(ROLES)})", study.root)
        s = study.find(key)
        unusable = {"localizer", "derived", "single slice", "mixed orientations"} & set(s.flags)
        if unusable:
            raise CaseError(f"series {s.number} ({s.description}) is a {', '.join(sorted(unusable))}: "
                            f"it cannot be the {role.upper()}", study.root)
        guess.roles[role] = Choice(s, "chosen by the user", "user")
    numbers = [c.series.number for c in guess.roles.values() if c.series is not None]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice and chosen:
        raise CaseError(f"series {', '.join(map(str, twice))} given more than one role", study.root)
    return guess
