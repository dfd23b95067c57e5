"""``brats-seg info CASE [--json]``: what was found and how it lies."""

from __future__ import annotations

import argparse
import json

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show a case's files, shape, spacing, orientation and labels")
    p.add_argument("case", help="case folder, MSD 4D file, or one BraTS-named file of the case")
    p.add_argument("--seg", help="explicit ground-truth file")
    p.add_argument("--scheme", "--gt-scheme", dest="scheme", choices=("brats2021", "brats2023", "msd", "brats2013"),
                   help="label scheme of the ground truth (detected from values and naming if not given; "
                        "brats2013: BraTS 2012-2016, 3 = non-enhancing core)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the case and print what was found; bad input raises ``CaseError`` (exit 2)."""
    from ..core import labels as lab
    from ..core.io import find_case_files, read_case
    from .segment import safe_streams

    safe_streams()
    cf = find_case_files(args.case, args.seg)
    case = read_case(cf, scheme=args.scheme)
    out = cf.describe()
    out["geometry"] = case.geometry.describe()
    out["internal_orientation"] = "LPS voxel order, arrays (z, y, x)"
    out["internal_shape_zyx"] = list(case.shape)
    out["spacing_zyx_mm"] = list(case.spacing)
    out["intensity"] = {m: {"min": float(a.min()), "max": float(a.max())} for m, a in case.images.items()}
    out["brain_volume_ml"] = round(float(case.brain_mask().sum()) * case.voxel_volume_ml, 3)
    if case.ground_truth is not None:
        masks = lab.region_masks(case.ground_truth)
        out["ground_truth"] = {
            "scheme": case.gt_scheme.name if case.gt_scheme else None,
            "scheme_note": case.gt_note,
            "volumes_ml": {r: round(float(m.sum()) * case.voxel_volume_ml, 3) for r, m in masks.items()},
            "classes": {lab.CLASS_NAMES[int(v)]: int(c) for v, c in
                        zip(*np.unique(case.ground_truth, return_counts=True)) if v},
            "class_volumes_ml": {lab.CLASS_NAMES[int(v)]: round(int(c) * case.voxel_volume_ml, 3) for v, c in
                                 zip(*np.unique(case.ground_truth, return_counts=True)) if v},
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"case      {out['case_id']}  (layout {out['layout']})")
    for m, p in out["images"].items():
        print(f"  {m:<6}  {p}")
    if out["seg"]:
        print(f"  seg     {out['seg']}")
    g = out["geometry"]
    print(f"shape     {tuple(g['shape'])} voxels, spacing {tuple(g['spacing_mm'])} mm, "
          f"orientation {g['orientation']}{' (oblique)' if g['oblique'] else ''}")
    print(f"brain     {out['brain_volume_ml']} mL")
    if "ground_truth" in out:
        gt = out["ground_truth"]
        vols = ", ".join(f"{r} {v} mL" for r, v in gt["volumes_ml"].items())
        print(f"labels    scheme {gt['scheme']} ({gt['scheme_note']})")
        print(f"regions   {vols}")
        if gt["class_volumes_ml"]:
            print("classes   " + ", ".join(f"{k} {v} mL" for k, v in gt["class_volumes_ml"].items()))
    return 0
