"""``brats-seg compare BASELINE FOLLOWUP [MORE...] [--json]``: change between time points, RANO category."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    p = sub.add_parser("compare", help="compare time points: SPD and volume change, lesions matched, RANO category",
                       description="Register each follow-up rigidly onto the baseline (whole T1ce, else FLAIR), "
                                   "match the enhancing lesions by overlap, flag new and vanished lesions, give the "
                                   "change of SPD (vs baseline, and vs the nadir with more than two time points) and "
                                   "of each volume, and the RANO category the SPD rule gives, as a suggestion. "
                                   "Time points in the order given, baseline first.")
    p.add_argument("points", nargs="+", metavar="TIMEPOINT",
                   help="case folder (or BraTS-named file) with its seg file, or a label map alone; baseline first")
    p.add_argument("--labels", nargs="+", metavar="L",
                   help="one label map per time point, in the same order ('-' for the case's own seg file)")
    p.add_argument("--scheme", choices=("brats2021", "brats2023", "msd"),
                   help="label scheme of the label maps (detected from values and naming if not given)")
    p.add_argument("--sequence", choices=("t1ce", "flair"), help="registration sequence (default t1ce, else flair)")
    p.add_argument("--registration-spacing", type=float, default=2.0, metavar="MM",
                   help="block-average the images to this spacing for the registration (default 2; 0: full "
                        "resolution)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def _mm2(v: float | None) -> str:
    return "none measurable" if v is None else f"{v:.1f} mm²"


def format_followup(res: dict, fu: dict) -> list[str]:
    """The lines of one follow-up in the table."""
    reg, spd = fu["registration"], fu["spd"]
    names = [p["name"] for p in res["time_points"]]
    lines = [f"follow-up {fu['index']}: {fu['name']}"]
    if reg["method"] == "rigid":
        lines.append(f"  registration  rigid on the {res['time_points'][fu['index']]['registration_image']}, "
                     f"rotation {reg['rotation_deg']:.2f} deg, Mattes MI {reg['metric_before']:.3f} -> "
                     f"{reg['metric_after']:.3f} (lower is better)")
    else:
        lines.append("  registration  none (labels alone on the identical grid)")
    lines.append(f"  SPD           {_mm2(spd['current_mm2'])}: {_pct(spd['change_vs_baseline_pct'])} vs baseline "
                 f"({_mm2(spd['baseline_mm2'])}), {_pct(spd['change_vs_nadir_pct'])} vs nadir "
                 f"({spd['nadir_mm2']:.1f} mm², {names[spd['nadir_index']]})")
    lines.append(f"  {'volume':<8}{'baseline mL':>13}{'now mL':>10}{'change mL':>11}{'change':>10}")
    for k, v in fu["volumes"].items():
        lines.append(f"  {k:<8}{v['baseline_ml']:>13.2f}{v['current_ml']:>10.2f}{v['change_ml']:>+11.2f}"
                     f"{_pct(v['change_pct']):>10}")
    lines.append(f"  lesions       {len(fu['lesions'])} groups: {fu['new_lesions']} new "
                 f"({fu['new_measurable_lesions']} measurable), {fu['vanished_lesions']} vanished")
    for g in fu["lesions"]:
        if g["status"] != "matched" or g["product_before_mm2"] or g["product_after_mm2"]:
            ids = f"{','.join(map(str, g['before'])) or '-'} -> {','.join(map(str, g['after'])) or '-'}"
            meas = ", measurable" if g["measurable_after"] else ""
            lines.append(f"    {g['status']:<9}{ids:<14}{g['product_before_mm2']:>9.1f} -> "
                         f"{g['product_after_mm2']:.1f} mm²{meas}")
    cat = fu["category"]
    lines.append(f"  RANO (suggestion)  {cat['suggestion']}: " + "; ".join(cat["reasons"]))
    lines += [f"  WARNING       {w}" for w in reg["warnings"]]
    return lines


def format_table(res: dict) -> str:
    """The comparison as the text ``brats-seg compare`` prints."""
    lines = ["time points (baseline first)"]
    for p in res["time_points"]:
        lines.append(f"  {p['index']}  {p['name']:<24} SPD {_mm2(p['spd_mm2'])}; {p['status']}")
    for fu in res["followups"]:
        lines += ["", *format_followup(res, fu)]
    lines += ["", "rules  " + "; ".join(f"{k}: {v}" for k, v in res["rules"].items() if k != "lesions")]
    lines += ["for the reader to judge (not computed):"] + [f"  - {r}" for r in res["reader_to_judge"]]
    lines += [f"note   {n}" for n in res["notes"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Compare and print the table or the JSON; bad input raises a ``BratsSegError`` (exit 2)."""
    from ..core.errors import BratsSegError
    from ..core.measure.compare import compare

    if len(args.points) < 2:
        raise BratsSegError("compare needs at least two time points (baseline first)")
    labels = None
    if args.labels is not None:
        if len(args.labels) != len(args.points):
            raise BratsSegError(f"--labels gives {len(args.labels)} label maps for {len(args.points)} time points")
        labels = [None if x == "-" else x for x in args.labels]
    spacing = args.registration_spacing or None
    res = compare(*args.points, labels=labels, sequence=args.sequence, scheme=args.scheme,
                  registration_spacing=spacing).to_dict()
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        print(format_table(res))
    return 0
