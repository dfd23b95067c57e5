"""Dense cascade inference against the patch-per-pixel way Havaei et al. ran it.

Same InputCascadeCNN (Havaei et al. 2017; seeded random weights, the paper's widths), same real case,
same run, three ways:

1. **patch per pixel** (the sources' way): for every brain voxel, the ``4 x 65 x 65`` axial patch
   centred on it (zero-padded at the slice border) is classified by ``forward_valid``, in batches of
   :data:`PATCH_BATCH` patches. A random sample of brain voxels is timed and the time is extrapolated
   to all brain voxels.
2. **dense, whole slices**: the fully convolutional ``forward`` on whole 240x240 axial slices, in
   batches of 8; a sample of slices is timed and extrapolated to every slice.
3. **ours**: :func:`napari_brats_seg.core.inference.predict`: dense, slices cropped to the brain's
   bounding box, timed in full.

The labels of (1) on the sampled voxels are compared with those of (3): they must be identical (the
dense network equals the patch classifier on zero-padded slices, and the brain crop only removes
zeros). Usage::

    python bench/bench_cascade.py [--case ../shared/data/brats2018/Brats18_2013_11_1] [--sample 1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEFAULT_CASE = ROOT.parent / "shared" / "data" / "brats2018" / "Brats18_2013_11_1"
#: Patches per forward pass of the patch-per-pixel reference.
PATCH_BATCH = 128
#: Slices per forward pass of the whole-slice dense run.
SLICE_BATCH = 8


def main() -> int:
    from bench_segresnet import cpu_name

    from napari_brats_seg.core import preprocess as pp
    from napari_brats_seg.core.inference import predict
    from napari_brats_seg.core.io import read_case
    from napari_brats_seg.core.models.cascade import cascade_spec
    from napari_brats_seg.core.models.families import build_network
    from napari_brats_seg.core.models.spec import LoadedModel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=Path, default=DEFAULT_CASE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=1024, help="brain voxels classified patch by patch")
    ap.add_argument("--slices", type=int, default=16, help="whole slices run densely for the estimate")
    args = ap.parse_args()

    spec = cascade_spec("input-cascade", kind="input")
    torch.manual_seed(args.seed)
    net = build_network(spec).eval()
    model = LoadedModel(spec, net)
    case = read_case(args.case)
    print(f"case {case.case_id} {case.shape} (z, y, x); InputCascadeCNN (Havaei 2017), seed {args.seed}")
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")

    # the inputs exactly as predict() prepares them, before the crop: (C, x, y, z) in model axes
    images = case.stack(spec.channels)
    mask = pp.brain_mask(images)
    x = pp.to_model_axes(pp.normalize(images, spec.normalization, mask), spec.orientation)
    brain = pp.to_model_axes(mask, spec.orientation)
    n_brain = int(brain.sum())
    b, a = net.before, net.after
    slices_first = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, 3, 0)))  # (z, C, x, y)
    padded = F.pad(slices_first, (b, a, b, a))

    # 3. ours, timed in full
    t0 = time.perf_counter()
    seg = predict(case, model, device="cpu")
    t_ours = time.perf_counter() - t0
    ours = pp.to_model_axes(seg.labels, spec.orientation)

    # 1. patch per pixel on a sample of brain voxels
    rng = np.random.default_rng(args.seed)
    vox = np.argwhere(brain)
    pick = vox[rng.choice(len(vox), size=min(args.sample, len(vox)), replace=False)]
    lut = np.array([c if c >= 0 else 0 for c in spec.classes], np.uint8)
    usable = torch.tensor([c >= 0 for c in spec.classes])
    side = b + a + 1
    patch_labels = np.empty(len(pick), np.uint8)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(pick), PATCH_BATCH):
            chunk = pick[s:s + PATCH_BATCH]
            patches = torch.stack([padded[k, :, i:i + side, j:j + side] for i, j, k in chunk])
            logits = net.forward_valid(patches)[:, :, 0, 0]
            logits[:, ~usable] = -torch.inf
            patch_labels[s:s + len(chunk)] = lut[logits.argmax(1).numpy()]
    t_patch = (time.perf_counter() - t0) / len(pick) * n_brain

    # 2. dense over whole slices, sampled slices
    n_sl = min(args.slices, slices_first.shape[0])
    mid = slices_first.shape[0] // 2
    sample = slices_first[mid - n_sl // 2: mid - n_sl // 2 + n_sl]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n_sl, SLICE_BATCH):
            net(sample[s:s + SLICE_BATCH])
    t_dense = (time.perf_counter() - t0) / n_sl * slices_first.shape[0]

    same = int((ours[tuple(pick.T)] == patch_labels).sum())
    print(f"brain voxels {n_brain}; sampled {len(pick)} patches of 4x{side}x{side}; "
          f"{n_sl} whole slices of {tuple(slices_first.shape[2:])}; ours: {seg.info['mode']}, "
          f"{seg.info['windows']} batches, crop {seg.info['crop']}")
    print()
    print("| way | time per case (s) | measured | ratio to patch per pixel |")
    print("|---|---:|---|---:|")
    print(f"| patch per pixel (batches of {PATCH_BATCH}) | {t_patch:.0f} | {len(pick)} patches, extrapolated | 1x |")
    print(f"| dense, whole 240x240 slices | {t_dense:.1f} | {n_sl} slices, extrapolated | {t_patch / t_dense:.0f}x |")
    print(f"| ours: dense, brain-cropped slices | {t_ours:.1f} | whole case | {t_patch / t_ours:.0f}x |")
    print()
    print(f"labels identical on sampled voxels: {same}/{len(pick)}; "
          f"label counts there {np.bincount(patch_labels, minlength=4).tolist()}")
    ok = same == len(pick) and t_patch / t_ours >= 100
    print(f"target (>= 100x with identical labels): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
