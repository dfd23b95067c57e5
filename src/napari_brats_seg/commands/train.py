"""``brats-seg train DATA... --model FAMILY -o CHECKPOINT``: train, resume or fine-tune a model.

Runs the same under ``torchrun --nproc_per_node N`` (DistributedDataParallel, gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train, resume or fine-tune a segmentation model on cases with labels",
                       description="Train a model on folders of cases (any layout brats-seg reads) whose "
                                   "_seg files hold the ground truth. Writes CHECKPOINT, "
                                   "CHECKPOINT.train.safetensors (to --resume), a .log.csv and a .png plot.")
    p.add_argument("data", nargs="+", help="case folders or folders of cases")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--model", default="unet3d", dest="family",
                   help="family: unet3d, segresnet, cascade, unet2d, resunet2d, attunet2d (default unet3d)")
    p.add_argument("--output-kind", choices=("regions", "labels"), default="regions",
                   help="regions: WT/TC/ET sigmoid, Dice+BCE; labels: softmax classes, Dice+CE")
    p.add_argument("--arch", type=json.loads, default={}, help="JSON overrides of the family's arguments")
    p.add_argument("--name", help="model name stored in the checkpoint (default: output stem)")
    p.add_argument("--factor", type=int, default=1, help="train at FACTOR x the files' voxel size (2: 1 mm -> 2 mm)")
    p.add_argument("--patch", type=int, nargs="+", default=[64, 64, 64], help="patch size (2 numbers for 2D)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--iters", type=int, default=20, dest="iters_per_epoch", help="iterations per epoch")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    g = p.add_argument_group("validation")
    g.add_argument("--val-fraction", type=float, default=0.2)
    g.add_argument("--folds", type=int, default=0, help="k-fold split (with --fold)")
    g.add_argument("--fold", type=int, default=0)
    g.add_argument("--val-cases", nargs="*", default=[], help="explicit validation case ids")
    g.add_argument("--val-every", type=int, default=1)
    g.add_argument("--patience", type=int, default=0, help="early stopping after N validations without gain")
    g.add_argument("--keep", choices=("best", "last"), default="best",
                   help="checkpoint the best validated weights (default) or the last epoch's")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this wall time")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (fast on CPUs with AMX/AVX-512)")
    p.add_argument("--p-tumour", type=float, default=0.67, help="share of patches centred on tumour")
    p.add_argument("--class-balance", action="store_true", help="centre patches on a uniformly drawn class")
    p.add_argument("--class-weighting", action="store_true", help="inverse-frequency class weights (labels)")
    p.add_argument("--affine-prob", type=float, default=0.2, help="probability of the small random affine")
    p.add_argument("--augment", choices=("basic", "nnunet"), default="basic",
                   help="augmentation recipe: basic (the shipped models') or nnunet (rotation, scale, noise, "
                        "blur, brightness, contrast, low resolution, gamma, flips)")
    p.add_argument("--adversarial", type=float, default=0.0, metavar="WEIGHT", help="adversarial term weight")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run (epoch, optimiser state)")
    p.add_argument("--finetune", metavar="CHECKPOINT", help="start from these weights (e.g. on corrected cases)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class _Bar:
    """A one-line text progress bar on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t0, self.last = enabled, time.time(), 0.0

    def __call__(self, done: int, total: int, msg: str) -> None:
        now = time.time()
        if not self.enabled or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        frac = done / max(total, 1)
        eta = (now - self.t0) / max(frac, 1e-9) * (1 - frac)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {done}/{total} {msg}  eta {eta / 60:.1f} min ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from ..core.training import TrainConfig, train

    cfg = TrainConfig(
        data=list(args.data), output=args.output, family=args.family, output_kind=args.output_kind,
        arch=args.arch, name=args.name, factor=args.factor, patch=tuple(args.patch), epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch, batch_size=args.batch_size, lr=args.lr,
        val_fraction=args.val_fraction, folds=args.folds, fold=args.fold, val_cases=list(args.val_cases),
        val_every=args.val_every, patience=args.patience, keep=args.keep, max_minutes=args.max_minutes, amp=args.amp,
        p_tumour=args.p_tumour, class_balance=args.class_balance, class_weighting=args.class_weighting,
        affine_prob=args.affine_prob, augment=args.augment, adversarial=args.adversarial, resume=args.resume,
        finetune=args.finetune, seed=args.seed, threads=args.threads, device=args.device)
    rank = int(os.environ.get("RANK", 0))
    result = train(cfg, on_progress=_Bar(not args.quiet and rank == 0))
    if rank == 0:
        for prob in result.problems:
            print(f"skipped: {prob}", file=sys.stderr)
        print(f"wrote {result.checkpoint} ({result.epochs} epochs, {result.seconds} s)")
        if result.best_dice:
            print("best validation Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in result.best_dice.items()))
    return 0
