"""DeepMedic's fast path: folded batch norms, channels-last convolutions, the repeat, and the bench's agreement."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny_deepmedic import tiny_deepmedic as _tiny

from napari_brats_seg.core.models import deepmedic as dm
from napari_brats_seg.core.models.deepmedic import fast

BENCH = Path(__file__).resolve().parents[3] / "bench"


def test_folded_pathways_equal_the_modules() -> None:
    net = _tiny()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 25, 23, 21, generator=gen)
    for path in (net.normal, *net.subsampled):
        folded = fast.fold_pathway(path)
        # residuals at layers 4, 6, 8 (1-based) keep the outputs of layers 2, 4, 6 unnormalised: the batch
        # norms of layers 2, 4, 6, 8 fold into the convolutions before them, the others stay
        assert [f.affine for f in folded] == [True, False, True, False, True, False, True, False]
        assert [f.bias is not None for f in folded] == [True, False, True, False, True, False, True, False]
        with torch.no_grad():
            ref = path(x)
            got = fast.run_pathway(path, folded, x)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() < 1e-5 * ref.abs().max().item()  # float rounding only
        assert not torch.equal(folded[0].weight, path.blocks[0].weight)  # a fold happened


def _reference(net: dm.DeepMedic, img: np.ndarray) -> torch.Tensor:
    """Every tile through the whole network (DeepMedic's own way), on the brain voxels."""
    plan = dm.plan_tiles(img, net.rec_field_net, net.segment_size)
    padded, half = plan["padded"], (net.rec_field_net - 1) // 2
    out = torch.zeros((net.n_classes,) + padded.shape[1:])
    with torch.no_grad():
        for t in plan["tiles"]:
            hr = torch.from_numpy(np.ascontiguousarray(padded[(slice(None),) + tuple(slice(v, v + 45) for v in t)]))
            lrs = [torch.from_numpy(dm.subsampled_segment(padded, plan["background"], t, f, net.rec_field,
                                                          net.path_out_size, net.subsampled_input_size(f)))[None]
                   for f in net.factors]
            out[(slice(None),) + tuple(slice(v + half, v + half + net.out_size) for v in t)] = \
                net.forward_segments(hr[None], lrs)[0]
    return out[(slice(None),) + tuple(slice(p, p + n) for p, n in zip(plan["pad_lo"], img.shape[1:]))]


@pytest.mark.parametrize(("residual_fc", "folds"), [([2], True), ([2, 3], False)])
def test_first_fc_fold_only_where_no_residual_needs_its_output(residual_fc: list[int], folds: bool) -> None:
    # with a residual at FC layer 3 the first FC layer's output is added unnormalised: no fold there
    net = _tiny(2, residual_layers_fc=residual_fc, fms_fc=[8, 8])
    assert (fast.fc_fold(net) is not None) is folds
    rng = np.random.default_rng(0)
    img = np.full((4, 34, 33, 32), -1.5, np.float32)
    img[:, 5:29, 6:28, 4:27] = rng.normal(size=(4, 24, 22, 23)).astype(np.float32)
    brain = torch.from_numpy(np.any(img != -1.5, axis=0))
    ref = _reference(net, img)
    got = net.predict_volume(torch.from_numpy(img)[None])[0]
    assert got.shape == ref.shape
    diff = (got - ref).abs()[:, brain]
    assert diff.max().item() < 1e-4 * max(1.0, ref.abs().max().item())


def test_repeat_centre_is_the_repetition_cut_at_the_outputs() -> None:
    net = _tiny()
    gen = torch.Generator().manual_seed(2)
    lr_outs = [torch.randn(3, 7, 9, 9, 9, generator=gen), torch.randn(3, 7, 5, 5, 5, generator=gen)]
    got = fast._repeat_centre(net, lr_outs, 1, 20)
    want = []
    for f, lr in zip(net.factors, lr_outs):
        for d in range(3):
            lr = lr.repeat_interleave(f, dim=2 + d)
        want.append(lr[:, :, 1:21, 1:21, 1:21])
    assert torch.equal(got, torch.cat(want, dim=1))


def test_fp32_cpu_convolutions_run_channels_last() -> None:
    gen = torch.Generator().manual_seed(3)
    x, w, b = torch.randn(2, 6, 9, 8, 7, generator=gen), torch.randn(5, 6, 3, 3, 3, generator=gen), torch.randn(5)
    y = fast.conv3d(x, w, b)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(y, F.conv3d(x, w, b), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16: back in the usual layout for the element-wise ops
        assert fast.conv3d(x, w).is_contiguous()


def test_bench_agreement_counts_voxels_and_dice_per_region(brats2018_dir: Path, deepmedic_dir: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_deepmedic as bench
    finally:
        sys.path.remove(str(BENCH))
    case = "Brats18_TCIA10_628_1"
    ref = deepmedic_dir / "reference_predictions" / f"{case}_deepmedic.nii.gz"
    gt = brats2018_dir / case / f"{case}_seg.nii.gz"
    assert bench.agreement(ref, ref) == (0, [1.0, 1.0, 1.0])
    n, dice = bench.agreement(ref, gt)
    # the original's Dice against the ground truth on this case, as the model folder's README records it
    assert n > 1000 and np.allclose(dice, [0.815, 0.156, 0.627], atol=6e-4)
    assert "flags:" in bench.cpu_description()
