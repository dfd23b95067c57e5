#!/usr/bin/env bash
# Repeatable recipe of the shipped default models (src/napari_brats_seg/weights/).
#
#   scripts/train_default_models.sh [DATA_DIR] [OUT_DIR]
#
# DATA_DIR: folder of BraTS cases with ground truth (default ../shared/data/brats2018, 12 cases).
# OUT_DIR : where checkpoints, .log.csv and .png plots go (default runs/).
# MINUTES : wall-time budget per model (default 60; the shipped models ran on a shared 2-core CPU).
# THREADS : torch threads per run (default 2).
#
# Both models train at 2 mm (factor 2 of the 1 mm BraTS grid) on brain crops; one split holds out
# fold 0 of 4 (3 cases of 12) for validation at the files' full 1 mm resolution. With a GPU and the
# full BraTS data, raise MINUTES, --epochs, --patch (e.g. 128 128 128 with --factor 1) and drop --amp
# if the GPU lacks bf16.
set -euo pipefail
DATA=${1:-../shared/data/brats2018}
OUT=${2:-runs}
MINUTES=${MINUTES:-60}
THREADS=${THREADS:-2}
mkdir -p "$OUT"

# Default 3D model: compact DynUNet (4 levels, 16-128 filters, deep supervision), WT/TC/ET regions,
# Dice + BCE, 48^3 patches at 2 mm (2/3 centred on tumour), flips, intensity and small-affine augmentation.
nice -n 5 brats-seg train "$DATA" -o "$OUT/unet3d-default.safetensors" --name unet3d-default \
  --model unet3d --output-kind regions --factor 2 --patch 48 48 48 --batch-size 2 \
  --epochs 60 --iters 25 --lr 2e-3 --folds 4 --fold 0 --affine-prob 0.1 --amp \
  --max-minutes "$MINUTES" --threads "$THREADS" --quiet

# Default cascade: Havaei InputCascadeCNN (32 local / 64 global maxout maps, 4 classes) on axial
# slices at 2 mm, 88x88 patches centred on a uniformly drawn class, inverse-frequency weighted CE.
nice -n 5 brats-seg train "$DATA" -o "$OUT/cascade-default.safetensors" --name cascade-default \
  --model cascade --output-kind labels --factor 2 --patch 88 88 --batch-size 4 \
  --epochs 60 --iters 25 --lr 1e-3 --folds 4 --fold 0 --affine-prob 0 --amp \
  --class-balance --class-weighting --p-tumour 0.8 \
  --max-minutes "$MINUTES" --threads "$THREADS" --quiet
