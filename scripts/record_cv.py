#!/usr/bin/env python
"""Cross-validated Dice of a recipe's fold models, printed as a table and recorded in a checkpoint.

Reads the held-out CSVs that ``brats-seg evaluate --heldout --csv`` wrote for each fold
(``STATE/NAME-f<k>.heldout.csv``), prints a Markdown table of the mean Dice per fold and region and
of all held-out cases together (each case held out once), and, with ``--into CHECKPOINT``, records
that figure as the checkpoint's ``provenance["dice"]["cross_validated"]`` (what ``brats-seg models``
shows and the default choice ranks by) through ``scripts/update_provenance.py``'s checked rewrite.

    PYTHONPATH=src python scripts/record_cv.py STATE [--name unet3d-v2] [--folds 4] [--into FINAL.safetensors]

An incomplete cross-validation (a fold's CSV missing) is printed but never recorded.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from napari_brats_seg.core.labels import REGIONS


def fold_scores(state: Path, name: str, folds: int) -> dict[int, dict[str, dict[str, float]]]:
    """``{fold: {case: {region: dice}}}`` of the folds whose held-out CSV exists."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for k in range(folds):
        path = state / f"{name}-f{k}.heldout.csv"
        if not path.is_file():
            continue
        cases: dict[str, dict[str, float]] = {}
        for row in csv.DictReader(path.open()):
            if row["case"] != "mean" and row["region"] in REGIONS:
                cases.setdefault(row["case"], {})[row["region"]] = float(row["dice"])
        out[k] = cases
    return out


def table(scores: dict[int, dict[str, dict[str, float]]]) -> tuple[str, dict[str, float]]:
    """The Markdown table (one row per fold, then all cases) and the all-cases means."""
    lines = ["| fold | held-out cases | WT | TC | ET |", "|---|---|---:|---:|---:|"]
    every: dict[str, list[float]] = {r: [] for r in REGIONS}
    for k, cases in sorted(scores.items()):
        means = {r: statistics.mean(c[r] for c in cases.values()) for r in REGIONS}
        for c in cases.values():
            for r in REGIONS:
                every[r].append(c[r])
        lines.append(f"| {k} | {', '.join(sorted(cases))} | "
                     + " | ".join(f"{means[r]:.3f}" for r in REGIONS) + " |")
    overall = {r: statistics.mean(v) for r, v in every.items() if v}
    n = len(every["WT"])
    if overall:
        lines.append(f"| **all** | {n} cases, each held out once | "
                     + " | ".join(f"**{overall[r]:.3f}**" for r in REGIONS) + " |")
    return "\n".join(lines), overall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state", type=Path, help="the recipe's state folder (fold checkpoints and CSVs)")
    ap.add_argument("--name", default="unet3d-v2")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--into", type=Path, help="checkpoint whose provenance records the figure")
    args = ap.parse_args()
    scores = fold_scores(args.state, args.name, args.folds)
    if not scores:
        print(f"no {args.name}-f<k>.heldout.csv in {args.state}", file=sys.stderr)
        return 1
    text, overall = table(scores)
    print(text)
    if args.into is None:
        return 0
    if len(scores) < args.folds:
        print(f"only folds {sorted(scores)} of {args.folds} are done: nothing recorded", file=sys.stderr)
        return 1
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from update_provenance import update  # the checked rewrite of a checkpoint's provenance

    from napari_brats_seg.core.models.checkpoint import read_spec

    dice = dict(read_spec(args.into).provenance.get("dice") or {})
    dice["cross_validated"] = {
        **{r: round(overall[r], 3) for r in REGIONS}, "folds": args.folds,
        "cases": sum(len(c) for c in scores.values()),
        "evaluated_on": f"{sum(len(c) for c in scores.values())} cases, each held out once",
        "how": f"{args.folds}-fold cross-validation of the recipe that trained this model (last-epoch fold "
               "models, brats-seg evaluate --heldout); this checkpoint is trained on all the cases",
        "per_fold": {str(k): {r: round(statistics.mean(c[r] for c in cases.values()), 3) for r in REGIONS}
                     for k, cases in sorted(scores.items())},
    }
    print(f"{args.into}: {update(args.into, dice, check_only=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
