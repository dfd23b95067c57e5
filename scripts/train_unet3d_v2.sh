#!/usr/bin/env bash
# Recipe of the candidate successor of unet3d-default (issue 14): resumable 4-fold cross-validation.
#
#   scripts/train_unet3d_v2.sh [DATA_DIR] [STATE_DIR] [FOLD...]
#
# DATA_DIR : BraTS cases with ground truth (default ../shared/data/brats2018, the 12 shared cases).
# STATE_DIR: checkpoints, resume state (*.train.safetensors, written after every epoch), logs
#            (default runs-v2/; keep it outside the work tree on a shared machine).
# FOLD...  : the folds to train (default 0 1 2 3 all); a fold whose resume state exists is resumed, a
#            finished fold (its held-out CSV exists) is skipped. Kill it at any time and run it again.
#            "all" trains the final model on every case (STATE/unet3d-v2.safetensors, no validation)
#            once the four folds are done, and records their cross-validated Dice in its provenance
#            (scripts/record_cv.py) and the post-processing chosen on the folds' held-out cases
#            (scripts/choose_postprocess.py: keep the largest tumour component or not, as nnU-Net does);
#            install it with `brats-seg models add STATE/unet3d-v2.safetensors`.
# THREADS  : torch threads (default 2). NICE: niceness (default 19, so it yields the CPU to other work).
# EPOCHS   : epochs per fold (default 160). A first fold 0 at 400 epochs validated flat from epoch 120
#            on (README, "The successor in training"): 160 gives the same at 40 % of the time.
#
# What differs from unet3d-default: a 5-level DynUNet (24-320 filters, two deep-supervision heads),
# 64^3 patches at 2 mm (a 128 mm cube), nnU-Net's augmentation (--augment nnunet), EPOCHS epochs of 25
# iterations (4 000 at 160, against 600), validation every 20 epochs; the last epoch is kept (no
# checkpoint chosen on the cases it is scored on). On the 2-core development CPU an epoch takes about
# 26 s idle (AVX-512 BF16, --amp): about 70 min per fold at 160 epochs.
set -euo pipefail
DATA=${1:-../shared/data/brats2018}
STATE=${2:-runs-v2}
shift $(( $# > 2 ? 2 : $# )) || true
FOLDS=${*:-0 1 2 3 all}
THREADS=${THREADS:-2}
NICE=${NICE:-19}
EPOCHS=${EPOCHS:-160}
PY=${PYTHON:-$(dirname "$0")/../.venv/bin/python}
ARCH='{"filters":[24,48,96,192,320],"kernel_size":[[3,3,3],[3,3,3],[3,3,3],[3,3,3],[3,3,3]],'\
'"strides":[[1,1,1],[2,2,2],[2,2,2],[2,2,2],[2,2,2]],"upsample_kernel_size":[[2,2,2],[2,2,2],[2,2,2],[2,2,2]],'\
'"deep_supr_num":2}'
mkdir -p "$STATE"
export OMP_WAIT_POLICY=PASSIVE
COMMON=(--model unet3d --output-kind regions --factor 2 --patch 64 64 64 --batch-size 2 --epochs "$EPOCHS"
  --iters 25 --lr 2e-3 --affine-prob 0.3 --augment nnunet --amp --threads "$THREADS" --arch "$ARCH" --quiet)
for F in $FOLDS; do
  if [ "$F" = all ]; then
    FINAL="$STATE/unet3d-v2.safetensors"
    N=$(ls "$STATE"/unet3d-v2-f[0-3].heldout.csv 2>/dev/null | wc -l)
    [ "$N" -lt 4 ] && { echo "final model waits for the 4 folds ($N done)"; continue; }
    [ -f "$STATE/unet3d-v2.done" ] && { echo "final model done"; continue; }
    RES=()
    [ -f "$STATE/unet3d-v2.train.safetensors" ] && RES=(--resume "$FINAL")
    nice -n "$NICE" "$PY" -m napari_brats_seg.cli train "$DATA" -o "$FINAL" --name unet3d-v2 \
      --val-fraction 0 --keep last "${COMMON[@]}" "${RES[@]}"
    "$PY" "$(dirname "$0")/record_cv.py" "$STATE" --name unet3d-v2 --into "$FINAL" &&
      nice -n "$NICE" "$PY" "$(dirname "$0")/choose_postprocess.py" "$STATE" --name unet3d-v2 --data "$DATA" \
        --into "$FINAL" && touch "$STATE/unet3d-v2.done"
    continue
  fi
  OUT="$STATE/unet3d-v2-f$F.safetensors"
  [ -f "$STATE/unet3d-v2-f$F.heldout.csv" ] && { echo "fold $F done"; continue; }
  RES=()
  [ -f "$STATE/unet3d-v2-f$F.train.safetensors" ] && RES=(--resume "$OUT")
  nice -n "$NICE" "$PY" -m napari_brats_seg.cli train "$DATA" -o "$OUT" --name "unet3d-v2-f$F" \
    --folds 4 --fold "$F" --val-every 20 --keep last "${COMMON[@]}" "${RES[@]}"
  nice -n "$NICE" "$PY" -m napari_brats_seg.cli evaluate "$OUT" "$DATA" --heldout \
    --csv "$STATE/unet3d-v2-f$F.heldout.csv"
done
