"""``brats-seg score PRED GT``: Dice, HD95, sensitivity, specificity, Jaccard, volumes and lesion-wise
scores of a prediction against a ground truth, per region (WT, TC, ET) and per label (NCR, ED, ET).

Either argument is a label file or a case folder (its ground truth). Label schemes are detected from
the values and the file naming unless given; when one map's scheme is ambiguous (e.g. values {0, 1, 2},
which three schemes allow) and the other map's scheme fits its values, that scheme is used. Both maps
must lie on the same voxel grid (after reorientation to the internal LPS order).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

#: Appended to the error of a map whose label scheme cannot be decided ({} is ``pred`` or ``gt``).
SCHEME_HINT = "; choose it with --scheme-{} (brats2021, brats2023, msd)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score a predicted label map against a ground truth (BraTS metrics)",
        description="Score PRED against GT per region (WT, TC, ET) and label (NCR, ED, ET): Dice, HD95 (mm), "
                    "sensitivity, specificity, Jaccard, volumes (mL), and BraTS 2023 lesion-wise Dice/HD95.",
    )
    p.add_argument("pred", help="predicted label file, or a case folder (its ground truth is used)")
    p.add_argument("gt", help="ground-truth label file, or a case folder with a _seg / -seg file")
    p.add_argument("--scheme", help="label scheme of both maps (brats2021, brats2023, msd)")
    p.add_argument("--scheme-pred", help="label scheme of PRED (overrides --scheme)")
    p.add_argument("--scheme-gt", help="label scheme of GT (overrides --scheme)")
    p.add_argument("--lesion-dilation", type=int, default=3, metavar="N",
                   help="lesion-wise ground-truth dilation in voxels (BraTS 2023 glioma: 3)")
    p.add_argument("--lesion-min-volume", type=float, default=50.0, metavar="MM3",
                   help="lesions of at most this volume are not scored lesion-wise (BraTS 2023 glioma: 50)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--csv", metavar="OUT", help="also write one row per region / label to this CSV file")
    p.set_defaults(func=run)


def _rows(res: dict) -> list[dict]:
    from ..core.metrics import METRIC_KEYS

    rows = []
    for name in ("WT", "TC", "ET"):
        lw = res["lesionwise"][name]
        rows.append({"kind": "region", "name": name, **{k: res[name][k] for k in METRIC_KEYS},
                     "lesionwise_dice": lw["dice"], "lesionwise_hd95": lw["hd95"], "lesions_tp": lw["n_tp"],
                     "lesions_fn": lw["n_fn"], "lesions_fp": lw["n_fp"]})
    for name, vals in res["labels"].items():
        rows.append({"kind": "label", "name": name, **{k: vals[k] for k in METRIC_KEYS}})
    return rows


def _print_table(res: dict) -> None:
    from ..core.labels import CLASS_NAMES, REGION_NAMES
    from ..core.metrics import LABEL_CLASSES

    inp = res["inputs"]
    for role in ("pred", "gt"):
        print(f"{role:<5} {inp[role]['file']}  ({inp[role]['scheme']}, {inp[role]['scheme_from']})")
    sp = " x ".join(f"{s:g}" for s in inp["spacing_zyx_mm"])
    print(f"grid  {tuple(inp['shape_zyx'])} voxels (z, y, x), spacing {sp} mm\n")
    head = (f"{'':<25}{'Dice':>7}{'HD95 mm':>9}{'Sens':>8}{'Spec':>8}{'Jaccard':>9}"
            f"{'pred mL':>10}{'GT mL':>10}")
    print(f"{'per region:':<25}" + head[25:])
    label_names = {k: CLASS_NAMES[c] for k, c in LABEL_CLASSES.items()} | {"RC": CLASS_NAMES[4]}
    entries = [(f"{r} ({REGION_NAMES[r]})", res[r]) for r in ("WT", "TC", "ET")]
    entries += [("per label:", None)] + [(f" {k} ({label_names[k]})", v) for k, v in res["labels"].items()]
    for name, v in entries:
        if v is None:
            print(name)
            continue
        print(f"{name[:24]:<25}{v['dice']:>7.3f}{v['hd95']:>9.2f}{v['sensitivity']:>8.3f}"
              f"{v['specificity']:>8.4f}{v['jaccard']:>9.3f}{v['volume_pred_ml']:>10.2f}{v['volume_gt_ml']:>10.2f}")
    print(f"\nlesion-wise (BraTS 2023: GT dilated {inp['lesion_dilation']} voxels, lesions > "
          f"{inp['lesion_min_volume_mm3']:g} mm³)")
    print(f"{'':<25}{'Dice':>7}{'HD95 mm':>9}{'lesions':>9}{'TP':>5}{'FN':>5}{'FP':>5}{'small':>7}")
    for r in ("WT", "TC", "ET"):
        lw = res["lesionwise"][r]
        print(f"{r:<25}{lw['dice']:>7.3f}{lw['hd95']:>9.2f}{lw['n_gt_lesions']:>9}{lw['n_tp']:>5}"
              f"{lw['n_fn']:>5}{lw['n_fp']:>5}{lw['n_small']:>7}")


def run(args: argparse.Namespace) -> int:
    from ..core.errors import CaseError
    from ..core.scoring import score_files

    res = score_files(args.pred, args.gt,
                      scheme_pred=args.scheme_pred or args.scheme, scheme_gt=args.scheme_gt or args.scheme,
                      lesion_dilation=args.lesion_dilation, lesion_min_volume=args.lesion_min_volume,
                      scheme_hint=SCHEME_HINT)
    if args.csv:
        out = Path(args.csv)
        if out.resolve() in {Path(res["inputs"][r]["file"]).resolve() for r in ("pred", "gt")}:
            raise CaseError("refusing to write the CSV over an input file", out)
        rows = _rows(res)
        fields = list(dict.fromkeys(k for row in rows for k in row))
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        _print_table(res)
        if args.csv:
            print(f"\nwrote {args.csv}")
    return 0
