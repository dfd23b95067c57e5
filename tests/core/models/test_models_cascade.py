"""Havaei et al. 2017 networks: the paper's layer sizes, and dense = patch-wise classification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_brats_seg.core.models.cascade import PATCH_SIZE, CascadeCNN, TwoPathCNN, cascade_spec
from napari_brats_seg.core.models.families import build_network


def test_twopath_layer_sizes_are_the_papers() -> None:
    net = TwoPathCNN()  # full width: 64 local and 160 global maps, maxout of 2
    x = torch.zeros(1, 4, 33, 33)
    with torch.no_grad():
        h1 = F.max_pool2d(net.local1(x), 4, stride=1)
        h2 = F.max_pool2d(net.local2(h1), 2, stride=1)
        g = net.glob(x)
        out = net.forward_valid(x)
    assert h1.shape == (1, 64, 24, 24)
    assert h2.shape == (1, 64, 21, 21)
    assert g.shape == (1, 160, 21, 21)
    assert net.final.weight.shape == (5, 224, 21, 21)
    assert out.shape == (1, 5, 1, 1)


@pytest.mark.parametrize("kind,first_out", [("input", 33), ("local", 24), ("mf", 21)])
def test_cascade_first_net_map_sizes_are_the_papers(kind: str, first_out: int) -> None:
    net = CascadeCNN(kind, local_maps=4, global_maps=6)
    patch = torch.zeros(1, 4, PATCH_SIZE[kind], PATCH_SIZE[kind])
    with torch.no_grad():
        assert net.first.forward_valid(patch).shape == (1, 5, first_out, first_out)
        assert net.forward_valid(patch).shape == (1, 5, 1, 1)
    assert net.before + net.after + 1 == PATCH_SIZE[kind]


@pytest.mark.parametrize("kind,widths", [("twopath", (64, 160)), ("input", (8, 12)), ("local", (8, 12)),
                                         ("mf", (8, 12))])
def test_dense_slice_equals_classifying_each_centred_patch(slices2d: torch.Tensor, kind: str,
                                                           widths: tuple[int, int]) -> None:
    torch.manual_seed(1)
    spec = cascade_spec(kind=kind, local_maps=widths[0], global_maps=widths[1])
    net = build_network(spec).eval()
    x = slices2d[:1, :, :, :29]  # a real 32 x 29 axial slice, 4 channels
    with torch.no_grad():
        dense = net(x)
        assert dense.shape == (1, 5, 32, 29)
        padded = F.pad(x, (net.before, net.after, net.before, net.after))
        side = PATCH_SIZE[kind]
        for i, j in [(0, 0), (31, 28), (16, 14), (3, 25), (27, 2)]:
            patch = padded[..., i: i + side, j: j + side]  # the zero-padded patch centred on (i, j)
            assert patch.shape[-2:] == (side, side)
            single = net.forward_valid(patch)[0, :, 0, 0]
            torch.testing.assert_close(single, dense[0, :, i, j], rtol=1e-5, atol=1e-5)
    assert spec.classes == (0, 1, 2, -1, 3) and spec.dims == 2
