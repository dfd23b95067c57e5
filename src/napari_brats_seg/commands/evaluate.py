"""``brats-seg evaluate CHECKPOINT DATA... [--csv OUT]``: per-case and mean metrics per region."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from .segment import RUNTIME_CHOICES

REGIONS = ("WT", "TC", "ET")
FIELDS = ("dice", "hd95", "sensitivity", "specificity", "volume_pred_ml", "volume_gt_ml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on cases with ground truth (per case and mean, per region)",
                       description="Segment every case under DATA with MODEL (a shipped name, checkpoint, or "
                                   "model folder) and compare with its _seg file: Dice, HD95 (mm), "
                                   "sensitivity, specificity and volumes for WT, TC and ET.")
    p.add_argument("model", help="shipped or installed model name, checkpoint file, or model folder; "
                                 "'default': the best installed model (brats-seg models shows it)")
    p.add_argument("data", nargs="+", help="case folders or folders of cases (with ground truth)")
    p.add_argument("--csv", help="write one row per case and region (and the means) to this CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--heldout", action="store_true",
                   help="only the cases the checkpoint's provenance lists as validation (held out)")
    p.add_argument("--cases", nargs="*", default=[], help="only these case ids")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (flips)")
    p.add_argument("--device", default="auto")
    p.add_argument("--runtime", default="auto", choices=RUNTIME_CHOICES,
                   help="what runs the network on the CPU (see brats-seg segment --help)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..core.errors import BratsSegError, CaseError
    from ..core.inference import predict
    from ..core.io import find_cases, read_case, strip_nifti_suffix
    from ..core.metrics import compute_metrics
    from ..core.models.registry import load_model
    from .segment import _resolve_model, runtime_problem

    why = runtime_problem(args.runtime)
    if why:
        raise BratsSegError(why)
    name, why = _resolve_model(args.model)
    if name is None:
        raise BratsSegError(why)
    model = load_model(name, device="cpu")
    wanted = set(args.cases)
    if args.heldout:
        held = model.spec.provenance.get("val_cases") or []
        if not held:
            raise BratsSegError(f"{args.model}: its provenance lists no held-out (validation) cases")
        wanted |= set(held)
    sources = find_cases(args.data)
    rows: list[dict] = []
    problems: list[str] = []
    for src in sources:
        if wanted and not ({Path(src).name, strip_nifti_suffix(src)} & wanted):
            continue  # not asked for (a case id is its folder's or file's name): do not read it
        try:
            case = read_case(src)
        except CaseError as exc:
            problems.append(str(exc))
            continue
        if case.ground_truth is None:
            problems.append(f"{src}: no ground truth, not scored")
            continue
        t0 = time.time()
        seg = predict(case, model, device=args.device, tta=args.tta, runtime=args.runtime)
        secs = time.time() - t0
        m = compute_metrics(seg.labels, case.ground_truth, case.spacing)
        for r in REGIONS:
            rows.append({"case": case.case_id, "region": r, **{f: m[r][f] for f in FIELDS},
                         "seconds": round(secs, 1)})
        if not args.json:
            print(f"{case.case_id:<28} " + "  ".join(f"{r} {m[r]['dice']:.3f}" for r in REGIONS)
                  + f"  ({secs:.0f} s)", file=sys.stderr)
    if not rows:
        raise BratsSegError("no case with ground truth to evaluate" +
                            (f" ({'; '.join(problems)})" if problems else ""))
    means = []
    for r in REGIONS:
        sel = [row for row in rows if row["region"] == r]
        means.append({"case": "mean", "region": r,
                      **{f: float(np.mean([row[f] for row in sel])) for f in FIELDS},
                      "seconds": float(np.mean([row["seconds"] for row in sel]))})
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["case", "region", *FIELDS, "seconds"])
            w.writeheader()
            w.writerows(rows + means)
    if args.json:
        print(json.dumps({"model": model.spec.name, "cases": rows, "mean": means, "skipped": problems}, indent=2))
    else:
        _table(model.spec.name, rows, means)
        for p in problems:
            print(f"skipped: {p}", file=sys.stderr)
    return 0


def _table(name: str, rows: list[dict], means: list[dict]) -> None:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    head = f"{'case':<28}" + "".join(f"{'Dice ' + r:>9}" for r in REGIONS) + "".join(f"{'HD95 ' + r:>10}" for r in REGIONS)
    print(f"model {name}: {len(cases)} case(s)")
    print(head)
    for c in cases + ["mean"]:
        sel = {r["region"]: r for r in (rows + means) if r["case"] == c}
        print(f"{c:<28}" + "".join(f"{sel[r]['dice']:>9.3f}" for r in REGIONS)
              + "".join(f"{sel[r]['hd95']:>10.2f}" for r in REGIONS))
