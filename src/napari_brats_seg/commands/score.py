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

import numpy as np


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


def _label_file(arg: str) -> tuple[Path, str | None]:
    """The label file an argument names, and the layout its naming implies (None if unknown)."""
    from ..core.errors import CaseError
    from ..core.io import classify_file, find_case_files

    path = Path(arg)
    if path.is_dir():
        cf = find_case_files(path)
        if cf.seg is None:
            raise CaseError("case folder has no ground-truth file (_seg / -seg)", path)
        return cf.seg, cf.layout
    if not path.exists():
        raise CaseError("no such file or folder", path)
    cls = classify_file(path)
    return path, (cls[0] if cls and cls[2] == "seg" else None)


def _read(path: Path, layout: str | None, scheme: str | None, other_scheme=None):
    """Read a label map; if its scheme is ambiguous, fall back to ``other_scheme`` when that fits."""
    from ..core import labels as lab
    from ..core.errors import CaseError
    from ..core.io import load_nifti, read_labels

    if scheme is not None:
        arr, sch, geo = read_labels(path, scheme=scheme)
        return arr, sch, geo, "given"
    try:
        arr, sch, geo = read_labels(path, layout=layout)
        return arr, sch, geo, "detected"
    except CaseError:
        data, _ = load_nifti(path, allow_empty=True)
        try:
            det = lab.detect_scheme(np.asarray(data).astype(np.int64))
        except lab.LabelSchemeError:
            raise  # values of no scheme: read_labels' message stands
        if det.scheme is not None:
            raise
        if other_scheme is not None and other_scheme in det.candidates:
            arr, sch, geo = read_labels(path, scheme=other_scheme)
            return arr, sch, geo, "assumed from the other map"
        raise


def score_files(pred: str, gt: str, *, scheme_pred: str | None = None, scheme_gt: str | None = None,
                lesion_dilation: int = 3, lesion_min_volume: float = 50.0) -> dict:
    """Read two label maps (files or case folders) and score them; the JSON object ``score --json`` prints.

    Raises
    ------
    CaseError
        Unreadable files, a scheme that cannot be decided, or maps on different grids.
    """
    from ..core.errors import CaseError, LabelSchemeError
    from ..core.io import AFFINE_ATOL
    from ..core.metrics import compute_metrics

    gpath, glayout = _label_file(gt)
    ppath, playout = _label_file(pred)
    hint = "; choose it with --scheme-{} (brats2021, brats2023, msd)"
    try:
        g, gs, ggeo, gvia = _read(gpath, glayout, scheme_gt)
    except (CaseError, LabelSchemeError) as exc:
        raise CaseError(f"{exc}{hint.format('gt') if 'choose' in str(exc) else ''}") from None
    try:
        p, ps, pgeo, pvia = _read(ppath, playout, scheme_pred, gs)
    except (CaseError, LabelSchemeError) as exc:
        raise CaseError(f"{exc}{hint.format('pred') if 'choose' in str(exc) else ''}") from None
    if pgeo.internal_shape != ggeo.internal_shape:
        raise CaseError(f"prediction lies on a different grid than the ground truth {gpath.name}: shape "
                        f"{pgeo.shape} vs {ggeo.shape}", ppath)
    diff = float(np.abs(pgeo.internal_affine - ggeo.internal_affine).max())
    if diff > AFFINE_ATOL:
        raise CaseError(f"prediction lies on a different grid than the ground truth {gpath.name}: affines "
                        f"differ by up to {diff:.4g} mm", ppath)
    spacing = ggeo.spacing
    m = compute_metrics(p, g, spacing, lesionwise=True, lesion_dilation=lesion_dilation,
                        min_lesion_volume_mm3=lesion_min_volume)
    out = {r: m[r] for r in ("WT", "TC", "ET")}
    out["labels"] = m["labels"]
    out["lesionwise"] = m["lesionwise"]
    out["inputs"] = {
        "pred": {"file": str(ppath), "scheme": ps.name, "scheme_from": pvia},
        "gt": {"file": str(gpath), "scheme": gs.name, "scheme_from": gvia},
        "spacing_zyx_mm": list(spacing), "shape_zyx": list(ggeo.internal_shape),
        "lesion_dilation": lesion_dilation, "lesion_min_volume_mm3": lesion_min_volume,
    }
    return out


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

    res = score_files(args.pred, args.gt,
                      scheme_pred=args.scheme_pred or args.scheme, scheme_gt=args.scheme_gt or args.scheme,
                      lesion_dilation=args.lesion_dilation, lesion_min_volume=args.lesion_min_volume)
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
