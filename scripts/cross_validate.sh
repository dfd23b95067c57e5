#!/usr/bin/env bash
# 4-fold cross-validation of the shipped models' recipe (scripts/train_default_models.sh).
#
#   scripts/cross_validate.sh [DATA_DIR] [OUT_DIR]
#
# Trains both models once per fold (FOLD=0..3, each holding out a quarter of the cases), keeping the
# last epoch (SELECT=last: no checkpoint is chosen on the cases it is scored on), evaluates each on its
# held-out cases, and prints the per-case Dice and their mean over all cases, each held out once.
# THREADS, MINUTES as in train_default_models.sh. On the 2-core development CPU one fold of both
# models took 15-65 min depending on the load.
set -euo pipefail
DATA=${1:-../shared/data/brats2018}
OUT=${2:-runs-cv}
HERE=$(cd "$(dirname "$0")" && pwd)
for f in 0 1 2 3; do
  FOLD=$f SELECT=last bash "$HERE/train_default_models.sh" "$DATA" "$OUT"
done
python3 - "$OUT" <<'PY'
import csv, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
for model in ("unet3d-default", "cascade-default"):
    dice = {"WT": [], "TC": [], "ET": []}
    for path in sorted(out.glob(f"{model}*.heldout.csv")):
        for row in csv.DictReader(path.open()):
            if row["region"] in dice and row["case"] != "mean":
                dice[row["region"]].append(float(row["dice"]))
                print(f"{model:18s} {path.name:36s} {row['case']:28s} {row['region']} {float(row['dice']):.3f}")
    print(f"{model}: {len(dice['WT'])} held-out cases, cross-validated Dice "
          + " / ".join(f"{r} {statistics.mean(v):.3f}" for r, v in dice.items() if v))
PY
