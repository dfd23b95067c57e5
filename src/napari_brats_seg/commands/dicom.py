"""``brats-seg dicom STUDY [--json] [--t1 S --t1ce S --t2 S --flair S]``: a study's series and roles."""

from __future__ import annotations

import argparse
import json
import sys

_ROLE_FLAGS = ("t1", "t1ce", "t2", "flair")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``dicom`` sub-command."""
    p = sub.add_parser("dicom", help="list a DICOM study's series and guess T1/T1ce/T2/FLAIR")
    p.add_argument("study", help="folder of one DICOM study (any depth), as exported from PACS")
    for role in _ROLE_FLAGS:
        p.add_argument(f"--{role}", metavar="SERIES", help=f"the {role.upper()} series (number or UID)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _rows(study) -> list[str]:
    head = (f"{'#':>5}  {'description':<26} {'plane':<26} {'size':<13} {'pixel mm':<11} {'thick/gap':<10} "
            f"{'TR/TE/TI ms':<17} {'time':<7} files  flags")
    lines = [head]
    for s in study.series:
        d = s.describe()
        ps = d["pixel_spacing_mm"]
        size = f"{d['columns']}x{d['rows']}x{d['slices']}"
        tt = f"{d['tr_ms'] or 0:g}/{d['te_ms'] or 0:g}" + (f"/{d['ti_ms']:g}" if d["ti_ms"] else "")
        thick = f"{d['slice_thickness_mm'] or 0:g}/{d['gap_mm'] if d['gap_mm'] is not None else '-'}"
        flags = ", ".join(d["flags"] + ([f"contrast: {d['contrast_agent']}"] if d["contrast_agent"] else []))
        lines.append(f"{d['number']!s:>5}  {d['description'][:26]:<26} {d['plane'][:26]:<26} {size:<13} "
                     f"{(f'{ps[0]:.2f}x{ps[1]:.2f}' if ps else '-'):<11} {thick:<10} {tt:<17} "
                     f"{(d['acquisition_time'] or '')[:6]:<7} {d['files']:>5}  {flags}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Discover the series, guess the roles, apply the user's choices, print."""
    from ..core.clinical.dicom import discover
    from ..core.clinical.roles import assign_roles

    study = discover(args.study)
    chosen = {r: getattr(args, r) for r in _ROLE_FLAGS if getattr(args, r)}
    guess = assign_roles(study, chosen)
    if args.json:
        out = {"study": str(study.root), "series": [s.describe() for s in study.series],
               "not_dicom_files": len(study.not_dicom), "non_image_objects": len(study.non_image)}
        out.update(guess.describe())
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print("\n".join(_rows(study)))
    if study.not_dicom or study.non_image:
        print(f"set aside: {len(study.not_dicom)} file(s) that are not DICOM, "
              f"{len(study.non_image)} DICOM object(s) without an image")
    print("\nsequence roles:")
    for role, c in guess.roles.items():
        s = c.series
        name = f"series {s.number} ({s.description})" if s else "none"
        alt = f"; other candidates: {', '.join(str(a.number) for a in c.alternatives)}" if c.alternatives else ""
        print(f"  {role:<6} {name:<34} {c.confidence:<7} {c.reason}{alt}")
    if guess.needs_confirmation:
        flags = " ".join(f"--{r} N" for r in guess.needs_confirmation)
        print(f"\nconfirm or change: {', '.join(guess.needs_confirmation)} (e.g. {flags})")
    return 0

