"""``brats-seg measure LABELS [--case CASE] [--json]``: RANO diameters, SPD and volumes of a label map."""

from __future__ import annotations

import argparse
import json
import sys

#: Lesions listed per figure in the table (all of them in the JSON).
TABLE_ROWS = 10


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``measure`` sub-command."""
    p = sub.add_parser("measure", help="RANO bidimensional measurements, SPD and volumes of a label map",
                       description="Measure each enhancing lesion (3D component of ET) on its axial slice of largest "
                                   "product: the longest diameter and the longest one perpendicular to it, the "
                                   "RANO measurability rules, the sum of products of up to 5 target lesions, a "
                                   "whole-tumour (RANO-LGG style) figure, and the volumes of NCR, ED, ET, TC, WT.")
    p.add_argument("labels", help="label map (NIfTI; brats2021, brats2023 or msd values)")
    p.add_argument("--case", help="the case the labels belong to (its id, naming and grid are used)")
    p.add_argument("--scheme", choices=("brats2021", "brats2023", "msd"),
                   help="label scheme of the file (detected from values and naming if not given)")
    p.add_argument("--tolerance", type=float, default=None, metavar="DEG",
                   help="how far from perpendicular the second diameter may be (default 5 degrees)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _lesion_rows(reg: dict, indent: str = "  ") -> list[str]:
    head = (f"{indent}{'id':>3}{'slice':>7}{'long mm':>9}{'perp mm':>9}{'product mm²':>13}{'slices':>8}"
            f"{'vol mL':>9}  status")
    lines = [head]
    for les in reg["lesions"][:TABLE_ROWS]:
        status = "target" if les["target"] else ("measurable" if les["measurable"] else "non-measurable")
        lines.append(f"{indent}{les['id']:>3}{les['slice']:>7}{les['long_mm']:>9.1f}{les['perp_mm']:>9.1f}"
                     f"{les['product_mm2']:>13.1f}{les['n_slices']:>8}{les['volume_ml']:>9.2f}  {status}")
    rest = len(reg["lesions"]) - TABLE_ROWS
    if rest > 0:
        lines.append(f"{indent}... {rest} smaller lesion{'s' * (rest > 1)} not listed (all in --json)")
    spd = reg["spd_mm2"]
    lines.append(f"{indent}SPD: {'undefined' if spd is None else f'{spd:.1f} mm²'}  ({reg['status']})")
    return lines


def format_table(res: dict) -> str:
    """The measurement as the text table ``brats-seg measure`` prints."""
    sp = " x ".join(f"{s:g}" for s in res["spacing_zyx_mm"])
    lines = [f"case    {res['case_id']}", f"labels  {res['labels']} ({res['scheme']})",
             f"plane   {res['plane']}; spacing {sp} mm (z, y, x); slice = internal axial index z",
             "", "RANO: enhancing tumour (3D components; diameters on the slice of largest product)"]
    lines += _lesion_rows({"lesions": res["lesions"], "spd_mm2": res["spd_mm2"], "status": res["status"]}) if \
        res["lesions"] else [f"  {res['status']}"]
    wt = res["whole_tumour"]
    lines += ["", "RANO-LGG style: whole tumour (NCR + ED + ET), for non-enhancing tumours"]
    lines += _lesion_rows(wt) if wt["lesions"] else [f"  {wt['status']}"]
    vol = res["volumes_ml"]
    lines += ["", "volumes mL  " + "  ".join(f"{k} {v:.2f}" for k, v in vol.items()),
              f"lesions     ET {res['lesion_count']['ET']}, WT {res['lesion_count']['WT']} (3D components)"]
    lines += [f"note        {n}" for n in res["notes"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure the labels and print the table or the JSON; bad input raises ``CaseError`` (exit 2)."""
    from ..core.measure import PERP_TOLERANCE_DEG, measure_file

    tol = PERP_TOLERANCE_DEG if args.tolerance is None else float(args.tolerance)
    if not 0 < tol < 45:
        from ..core.errors import BratsSegError

        raise BratsSegError(f"--tolerance must be between 0 and 45 degrees, got {tol:g}")
    res = measure_file(args.labels, case=args.case, scheme=args.scheme, tolerance_deg=tol).to_dict()
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        print(format_table(res))
    return 0
