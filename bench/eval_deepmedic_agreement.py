"""Agreement of the PyTorch DeepMedic port with the original implementation, on every shared real case.

For the 12 BraTS 2018 cases and the BraTS 2023 case in ``../shared/data``: our labels (CaPTk's model
loaded with :func:`load_captk_deepmedic`, the same normalisation and brain mask, tiles on the
original's grid) against the original DeepMedic 0.8.4's predictions in
``../shared/models/captk-deepmedic/reference_predictions`` (Dice per region), and both against the
ground truth next to the numbers that folder's README records.

    python3 bench/eval_deepmedic_agreement.py [--precision fp32|bf16] [--cases ID ...] [--runtime auto|torch|openvino]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_brats_seg.core import io
from napari_brats_seg.core import labels as lab
from napari_brats_seg.core.models.deepmedic import load_captk_deepmedic, segment_case

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "captk-deepmedic"
REGIONS = ("WT", "TC", "ET")
#: Dice of the original's predictions against the ground truth, as recorded in the model's README.
README_GT = {
    "Brats18_2013_11_1": (0.934, 0.836, 0.384), "Brats18_2013_23_1": (0.952, 0.963, 0.804),
    "Brats18_CBICA_ABM_1": (0.919, 0.929, 0.891), "Brats18_CBICA_AME_1": (0.917, 0.906, 0.839),
    "Brats18_CBICA_AQN_1": (0.905, 0.897, 0.786), "Brats18_TCIA01_201_1": (0.968, 0.947, 0.868),
    "Brats18_TCIA01_425_1": (0.815, 0.782, 0.734), "Brats18_TCIA02_135_1": (0.951, 0.924, 0.901),
    "Brats18_TCIA02_606_1": (0.945, 0.911, 0.670), "Brats18_TCIA03_265_1": (0.948, 0.886, 0.721),
    "Brats18_TCIA10_628_1": (0.815, 0.156, 0.627), "Brats18_TCIA10_639_1": (0.960, 0.673, 0.705),
}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def case_dirs() -> list[Path]:
    """The 12 BraTS 2018 case folders and the BraTS 2023 one."""
    return sorted((SHARED / "data" / "brats2018").iterdir()) + sorted((SHARED / "data" / "brats2023-nogt").iterdir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--cases", nargs="*", help="case ids (default: all 13)")
    parser.add_argument("--runtime", choices=("auto", "torch", "openvino"), default="auto",
                        help="what runs the port's network (core/models/deepmedic/runtime.py)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_captk_deepmedic(MODEL)
    dirs = [d for d in case_dirs() if not args.cases or d.name in args.cases]
    print(f"DeepMedic port vs the original DeepMedic 0.8.4 (CaPTk model), precision {args.precision}, "
          f"runtime {model.network.use_runtime(args.runtime, 'cpu', args.precision)}")
    print("| case | agreement WT | TC | ET | voxels labelled differently | ours vs GT WT | TC | ET | "
          "original vs GT (README) WT | TC | ET | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    agree_all, gt_all, readme_all = [], [], []
    for d in dirs:
        t0 = time.perf_counter()
        case = io.read_case(d)
        labels = segment_case(case, model, precision=args.precision, runtime=args.runtime)
        seconds = time.perf_counter() - t0
        ref, _, _ = io.read_labels(MODEL / "reference_predictions" / f"{case.case_id}_deepmedic.nii.gz",
                                   scheme="brats2021", geometry=case.geometry)
        ours, theirs = lab.region_masks(labels), lab.region_masks(ref)
        agree = [dice(ours[r], theirs[r]) for r in REGIONS]
        agree_all.append(agree)
        cells = [f"{v:.4f}" for v in agree] + [f"{int((labels != ref).sum())}"]
        if case.ground_truth is not None:
            gt = lab.region_masks(case.ground_truth)
            g = [dice(ours[r], gt[r]) for r in REGIONS]
            gt_all.append(g)
            cells += [f"{v:.3f}" for v in g]
        else:
            cells += ["-"] * 3
        rd = README_GT.get(case.case_id)
        if rd is not None:
            readme_all.append(rd)
            cells += [f"{v:.3f}" for v in rd]
        else:
            cells += ["-"] * 3
        print(f"| {case.case_id} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)
    a = np.mean(agree_all, axis=0)
    line = "| mean | " + " | ".join(f"{v:.4f}" for v in a) + " |"
    line += " | " + (" | ".join(f"{v:.3f}" for v in np.mean(gt_all, axis=0)) if gt_all else "- | - | -")
    line += " | " + (" | ".join(f"{v:.3f}" for v in np.mean(readme_all, axis=0)) if readme_all else "- | - | -")
    print(line + " | |")
    worst = np.min(agree_all, axis=0)
    print(f"lowest agreement: WT {worst[0]:.4f}, TC {worst[1]:.4f}, ET {worst[2]:.4f} (target >= 0.97)")
    return 0 if np.all(worst >= 0.97) else 1


if __name__ == "__main__":
    sys.exit(main())
