"""DeepMedic's fast path as three exportable graphs (ONNX / OpenVINO): the same arithmetic as :mod:`.fast`.

:func:`~.fast.run_tiles` computes in three kinds of step; each is a torch module here, with only
static slicing, so that a trace exports it with dynamic batch and spatial axes and a runtime that
fuses convolutions with the element-wise work around them (OpenVINO: batch norm, PReLU, residual
adds) runs it in one graph:

- :class:`NormalGraph`: the normal pathway on a slab, :func:`~.fast.run_pathway` with the folded
  convolutions of :func:`~.fast.fold_pathway`.
- :class:`SubsampledGraph`: per batch of tiles, the subsampled pathways and the first FC layer's part
  on them at low resolution (:func:`~.fast._first_fc_subsampled`); it also returns the pathways'
  outputs (repeated to full resolution by :func:`~.fast._repeat_centre`, in torch).
- :class:`FcGraph`: per unit, the first FC layer's part on the normal maps plus the subsampled part,
  then the 1x1x1 FC layers with their residual (:meth:`~.fast.TorchParts.fc`, :func:`~.fast._fc_rest`).

The residual connections of DeepMedic's pathways add the input of layer ``k - 1`` to the output of
layer ``k``: two valid 3x3x3 convolutions apart, so the centre crop is 2 voxels per side; the FC
layers' residuals add maps of the same size. Missing channels are zeros (:func:`_residual`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .fast import fc_fold, fold_pathway, low_res_kernels

if TYPE_CHECKING:  # pragma: no cover
    from .network import DeepMedic


def _const(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone().float()


def _residual(earlier: torch.Tensor, deeper: torch.Tensor, crop: int) -> torch.Tensor:
    """``deeper`` plus ``earlier`` (cut by ``crop`` voxels per side, zero channels appended)."""
    if crop:
        earlier = earlier[:, :, crop:-crop, crop:-crop, crop:-crop]
    c_e, c_d = earlier.shape[1], deeper.shape[1]
    if c_e < c_d:
        earlier = F.pad(earlier, (0, 0, 0, 0, 0, 0, 0, c_d - c_e))
    elif c_e > c_d:
        earlier = earlier[:, :c_d]
    return deeper + earlier


class _PathwayGraph(nn.Module):
    """A pathway's blocks with the folds of :func:`~.fast.fold_pathway`, as constants."""

    def __init__(self, path: nn.Module) -> None:
        super().__init__()
        folded = fold_pathway(path)
        self.residual_idx = sorted(path.residual_idx)
        self.n = len(folded)
        for i, (block, f) in enumerate(zip(path.blocks, folded)):
            if any(s != 1 for s in f.weight.shape[2:]) and f.weight.shape[-1] != 3:  # pragma: no cover
                raise ValueError("DeepMedic graphs need 3x3x3 pathway convolutions")
            self.register_buffer(f"w{i}", _const(f.weight))
            self.register_buffer(f"b{i}", _const(f.bias) if f.bias is not None else torch.zeros(f.weight.shape[0]))
            self.register_buffer(f"s{i}", _const(block.scale) if f.affine else torch.ones(f.weight.shape[1]))
            self.register_buffer(f"t{i}", _const(block.shift) if f.affine else torch.zeros(f.weight.shape[1]))
            self.register_buffer(f"a{i}", _const(block.prelu) if block.prelu is not None else torch.ones(0))
        self.affine = [f.affine for f in folded]
        self.has_bias = [f.bias is not None for f in folded]
        self.has_prelu = [block.prelu is not None for block in path.blocks]

    def pathway(self, x: torch.Tensor) -> torch.Tensor:
        prev, inp = x, x
        for i in range(self.n):
            a = inp
            if self.affine[i]:
                a = a * getattr(self, f"s{i}").view(1, -1, 1, 1, 1) + getattr(self, f"t{i}").view(1, -1, 1, 1, 1)
            if self.has_prelu[i]:
                a = F.prelu(a, getattr(self, f"a{i}"))
            out = F.conv3d(a, getattr(self, f"w{i}"), getattr(self, f"b{i}") if self.has_bias[i] else None)
            if i in self.residual_idx:
                out = _residual(prev, out, 2)
            prev, inp = inp, out
        return inp


class NormalGraph(_PathwayGraph):
    """The normal pathway: ``(N, C, a, b, c)`` -> ``(N, C_n, a - 16, b - 16, c - 16)`` (8 layers)."""

    def __init__(self, net: DeepMedic) -> None:
        super().__init__(net.normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pathway(x)


class SubsampledGraph(nn.Module):
    """Per batch of tiles: the first FC layer's part on the subsampled maps, and those maps.

    Inputs: one ``(N, C, s_f, s_f, s_f)`` per subsampled pathway (:func:`~.tiling.subsampled_segment`).
    Outputs: ``y_sub`` ``(N, C_fc, n, n, n)`` (``n`` = the tiles' output size), then each pathway's
    output ``(N, C_s, l_f, l_f, l_f)``.
    """

    def __init__(self, net: DeepMedic) -> None:
        super().__init__()
        self.paths = nn.ModuleList(_PathwayGraph(p) for p in net.subsampled)
        fc = fc_fold(net)
        first = net.fc.blocks[0]
        self.factors = list(net.factors)
        self.k = int(first.weight.shape[-1])
        self.n = int(net.out_size)
        for j, (chans, kern) in enumerate(low_res_kernels(net, None if fc is None else fc[0])):
            self.register_buffer(f"kern{j}", _const(kern))
            self.register_buffer(f"s{j}", _const(first.scale[chans]))
            self.register_buffer(f"t{j}", _const(first.shift[chans]))
            self.register_buffer(f"a{j}", _const(first.prelu[chans]))

    def forward(self, *lrs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = [p.pathway(x) for p, x in zip(self.paths, lrs)]
        k, n = self.k, self.n
        total = None
        for j, (lr, f) in enumerate(zip(outs, self.factors)):
            a = F.prelu(lr * getattr(self, f"s{j}").view(1, -1, 1, 1, 1) + getattr(self, f"t{j}").view(1, -1, 1, 1, 1),
                        getattr(self, f"a{j}"))
            z = F.conv_transpose3d(a, getattr(self, f"kern{j}"), stride=f)
            z = z[:, :, k - 1 : k - 1 + n, k - 1 : k - 1 + n, k - 1 : k - 1 + n]
            total = z if total is None else total + z
        assert total is not None
        return (total, *outs)


class FcGraph(nn.Module):
    """Per unit of the FC layers: normal maps around it, the subsampled part, the repeated maps -> logits.

    Inputs: ``x_n`` ``(N, C_n, m + k - 1, ...)`` (the normal pathway's maps of the unit's window),
    ``y_sub`` ``(N, C_fc, m, m, m)`` and ``u_c`` ``(N, C_sub, m, m, m)`` (the subsampled part and
    maps at the unit). Output: ``(N, n_classes, m, m, m)`` logits (the class bias added).
    """

    def __init__(self, net: DeepMedic) -> None:
        super().__init__()
        fc = fc_fold(net)
        self.folded = fc is not None
        blocks = net.fc.blocks
        first = blocks[0]
        c_n = net.normal.blocks[-1].weight.shape[0]
        w_n = first.weight.detach()[:, :c_n] * first.keep
        if fc is not None:
            w_n = w_n * fc[0].view(-1, 1, 1, 1, 1)
        self.register_buffer("w_n", _const(w_n))
        self.register_buffer("b_n", _const(fc[1]) if fc is not None else torch.zeros(w_n.shape[0]))
        self.register_buffer("s_n", _const(first.scale[:c_n]))
        self.register_buffer("t_n", _const(first.shift[:c_n]))
        self.register_buffer("a_n", _const(first.prelu[:c_n]))
        self.k = int(first.weight.shape[-1])
        self.c0 = (self.k - 1) // 2
        self.residual_idx = sorted(net.fc.residual_idx)
        self.n_rest = len(blocks) - 1
        for i, block in enumerate(blocks[1:], start=1):
            self.register_buffer(f"w{i}", _const(block.weight.detach() * block.keep))
            affine = not (self.folded and i == 1)
            self.register_buffer(f"s{i}", _const(block.scale) if affine else torch.ones(block.weight.shape[1]))
            self.register_buffer(f"t{i}", _const(block.shift) if affine else torch.zeros(block.weight.shape[1]))
            self.register_buffer(f"a{i}", _const(block.prelu))
        self.affine = [not (self.folded and i == 1) for i in range(len(blocks))]
        self.register_buffer("class_bias", _const(net.class_bias))

    def forward(self, x_n: torch.Tensor, y_sub: torch.Tensor, u_c: torch.Tensor) -> torch.Tensor:
        a = F.prelu(x_n * self.s_n.view(1, -1, 1, 1, 1) + self.t_n.view(1, -1, 1, 1, 1), self.a_n)
        h1 = F.conv3d(a, self.w_n, self.b_n) + y_sub
        c0, e = self.c0, self.k - 1 - self.c0
        ctr = x_n[:, :, c0:-e, c0:-e, c0:-e] if e else x_n[:, :, c0:, c0:, c0:]
        prev, inp = torch.cat([ctr, u_c], dim=1), h1
        for i in range(1, self.n_rest + 1):
            a = inp
            if self.affine[i]:
                a = a * getattr(self, f"s{i}").view(1, -1, 1, 1, 1) + getattr(self, f"t{i}").view(1, -1, 1, 1, 1)
            out = F.conv3d(F.prelu(a, getattr(self, f"a{i}")), getattr(self, f"w{i}"))
            if i in self.residual_idx:
                out = _residual(prev, out, 0)
            prev, inp = inp, out
        return inp + self.class_bias.view(1, -1, 1, 1, 1)


__all__ = ["FcGraph", "NormalGraph", "SubsampledGraph"]
