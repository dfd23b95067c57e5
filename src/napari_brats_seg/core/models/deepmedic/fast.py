"""DeepMedic inference on a whole padded volume: the original's tiles, computed with less work.

:meth:`DeepMedic.predict_volume <napari_brats_seg.core.models.deepmedic.network.DeepMedic.predict_volume>`
plans DeepMedic's tiles (:mod:`.tiling`) and calls :func:`run_tiles`, which gives the same
logits as running every tile through the whole network (a test checks it to float tolerance) by
splitting the network where its parts stop depending on the tile:

- The normal pathway has only valid convolutions: its output at a voxel does not depend on the tile.
  It runs once, densely, in slabs (DeepMedic recomputes it for every 45^3 tile, 3.7 times the work).
- The first FC layer (a valid ``k^3`` convolution on the 75 concatenated maps) is linear in its input,
  so it splits into a part on the normal pathway's maps (read from the dense maps, on a tile's whole
  output or on its brain blocks, whichever is less work) and a part on the repeated subsampled maps,
  which depends on the tile (their grid is anchored to it). That part is computed per tile at the
  maps' *low* resolution: batch norm and PReLU
  act per channel and commute with the repetition, and a ``k``-tap convolution of an ``f``-fold
  repetition is a transposed convolution of stride ``f`` with ``f + k - 1`` summed taps (exact; 4.3x
  fewer multiply-adds for f = 3, 7.3x for f = 5, k = 3).
- The remaining FC layers are 1x1x1: they run per tile on the sum, with the residual connection from
  the FC input (normal maps and repeated subsampled maps at the output voxels).
- Only output blocks that hold brain are written (outside the brain the labels are background), and
  the dense normal pathway is computed only where those blocks' windows need it.
- Batch norms are folded into the convolutions before them where no residual needs the unnormalised
  maps (:func:`fold_pathway`, :func:`fc_fold`), and CPU convolutions run on channels-last tensors
  (:func:`conv3d`): the same result up to float rounding.

Models whose first FC layer is mirror-padded (``fc_padding="mirror"``) depend on the tile near its
border: they run tile by tile through the whole network, as DeepMedic does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ...progress import CancelToken, ProgressCallback, check, report
from .tiling import subsampled_segment

if TYPE_CHECKING:  # pragma: no cover
    from .network import DeepMedic


def bf16_cpu(x: torch.Tensor) -> bool:
    """Whether a convolution of ``x`` runs in bfloat16 on the CPU (bf16 input or bf16 autocast)."""
    if x.device.type != "cpu":
        return False
    return x.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu")
                                         and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def _conv_input(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` as a (transposed) convolution wants it on the CPU: channels-last (bf16 in bf16).

    oneDNN's CPU convolutions are fastest on channels-last tensors (in fp32 1.5-4x for the shapes here,
    in bf16 4x for the transposed ones). In fp32, per-channel element-wise operations (batch norm,
    PReLU) are as fast on channels-last tensors, so the layout stays; in bf16 they are slow on them, so
    the layout changes around the convolutions only. Returns the tensor and whether its result should
    go back to the usual layout.
    """
    if bf16_cpu(x):
        return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d), True
    if x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last_3d), False
    return x, False


def conv3d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A valid convolution of a channels-last copy on the CPU; in bf16 the result in the usual layout."""
    x, back = _conv_input(x)
    y = F.conv3d(x, w.to(x.dtype), None if bias is None else bias.to(x.dtype))
    return y.contiguous() if back else y


@dataclass(frozen=True)
class Folded:
    """A pathway block's convolution with the next block's batch norm folded in (at inference).

    ``conv(a, weight) + bias`` equals the batch norm of the block's convolution when ``bias`` is set;
    ``affine`` tells whether the block still applies its own batch norm (or bias) to its input: not
    when it was folded into the previous block's convolution.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    affine: bool


def fold_pathway(path: Any) -> list[Folded]:
    """Per block of ``path``, its convolution with the next block's batch norm folded in where allowed.

    Block ``i + 1``'s per-channel ``x * scale + shift`` acts on block ``i``'s convolution output, so it
    folds into that convolution (weights scaled per output channel, ``shift`` as its bias) unless that
    output is needed without it: when block ``i`` adds a residual after its convolution, or block
    ``i + 2`` adds block ``i``'s output as its residual. It saves two element-wise passes per fold.
    """
    blocks, res = list(path.blocks), path.residual_idx
    out, affine = [], True
    for i, block in enumerate(blocks):
        w = block.weight.detach() * block.keep
        bias = None
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        fold = nxt is not None and i not in res and (i + 2) not in res and not block.pad and not nxt.pad
        if fold:
            w = w * nxt.scale.view(-1, 1, 1, 1, 1)
            bias = nxt.shift.detach().clone()
        out.append(Folded(w, bias, affine))
        affine = not fold
    return out


def run_pathway(path: Any, folded: Sequence[Folded], x: torch.Tensor) -> torch.Tensor:
    """``path(x)`` with the folded convolutions of :func:`fold_pathway` (same result to float rounding)."""
    inp_prev: torch.Tensor | None = None
    inp = x
    for i, (block, f) in enumerate(zip(path.blocks, folded)):
        if f.affine:
            a = block.activate(inp)
        else:
            a = inp if block.prelu is None else F.prelu(inp, block.prelu.to(inp.dtype))
        out = conv3d(a, f.weight, f.bias)
        if i in path.residual_idx:
            assert inp_prev is not None
            out = residual(inp_prev, out)
        inp_prev, inp = inp, out
    return inp


def fc_fold(net: DeepMedic) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(scale, shift)`` of the second FC block's batch norm, when it folds into the first FC layer.

    The first FC layer's output is only the second block's input unless the third block adds it as its
    residual; then it must stay as it is (``None``).
    """
    blocks = net.fc.blocks
    if len(blocks) < 2 or 2 in net.fc.residual_idx:
        return None
    return blocks[1].scale.detach(), blocks[1].shift.detach()


def low_res_kernels(net: DeepMedic, scale: torch.Tensor | None = None) -> list[tuple[slice, torch.Tensor]]:
    """Per subsampled pathway: its channels in the FC input and its transposed-convolution kernel.

    ``scale``: per output channel, multiplied into the kernels (a batch norm folded in, :func:`fc_fold`).

    Along one axis, output ``j`` of a ``k``-tap convolution of the ``f``-fold repetition of ``a`` sees
    ``a[m]`` through the taps ``t`` with ``m f <= j + t < (m + 1) f``; summing those taps gives a kernel
    of ``f + k - 1`` taps applied with stride ``f``, whose output shifted by ``k - 1`` is the convolution.
    """
    first = net.fc.blocks[0]
    k = first.weight.shape[-1]
    w = first.weight.detach() * first.keep
    start = net.normal.blocks[-1].weight.shape[0]
    out = []
    for path, f in zip(net.subsampled, net.factors):
        c = path.blocks[-1].weight.shape[0]
        w_sub = w[:, start : start + c].transpose(0, 1)  # (c, out, k, k, k)
        kern = torch.zeros((c, w.shape[0]) + (f + k - 1,) * 3, dtype=w.dtype, device=w.device)
        for k0 in range(k):
            for k1 in range(k):
                for k2 in range(k):
                    kern[:, :, k - 1 - k0 : k - 1 - k0 + f, k - 1 - k1 : k - 1 - k1 + f,
                         k - 1 - k2 : k - 1 - k2 + f] += w_sub[:, :, k0, k1, k2, None, None, None]
        if scale is not None:
            kern = kern * scale.view(1, -1, 1, 1, 1)
        out.append((slice(start, start + c), kern))
        start += c
    return out


def _first_fc_subsampled(net: DeepMedic, lr_outs: Sequence[torch.Tensor],
                         kernels: Sequence[tuple[slice, torch.Tensor]]) -> torch.Tensor:
    """The first FC layer's part on the subsampled channels for whole tiles, ``(N, C_fc, S, S, S)``."""
    first = net.fc.blocks[0]
    k = first.weight.shape[-1]
    n = net.out_size
    total = None
    for lr, f, (chans, kern) in zip(lr_outs, net.factors, kernels):
        a, _ = _conv_input(first.activate(lr, chans))
        z = F.conv_transpose3d(a, kern.to(a.dtype), stride=f)
        z = z[:, :, k - 1 : k - 1 + n, k - 1 : k - 1 + n, k - 1 : k - 1 + n]
        total = z if total is None else total + z
    assert total is not None
    return total.contiguous()


def _fc_rest(net: DeepMedic, h1: torch.Tensor, fc_input: torch.Tensor, folded: bool = False) -> torch.Tensor:
    """The FC layers after the first (1x1x1), with their residual connections, and the class bias.

    ``h1``: the first FC layer's output; ``fc_input``: the FC pathway's input at the same voxels;
    ``folded``: ``h1`` has the second block's batch norm applied already (:func:`fc_fold`).
    """
    inp_prev, inp = fc_input, h1
    for i, block in enumerate(net.fc.blocks[1:], start=1):
        if folded and i == 1:
            out = conv3d(F.prelu(inp, block.prelu.to(inp.dtype)), block.weight * block.keep)
        else:
            out = block(inp)
        if i in net.fc.residual_idx:
            out = residual(inp_prev, out)
        inp_prev, inp = inp, out
    return inp + net.class_bias.view(1, -1, 1, 1, 1).to(inp.dtype)


def residual(earlier: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
    """Add ``earlier`` (centre-cropped, zero channels appended) to ``deeper`` (DeepMedic's residual).

    ``deeper`` is changed in place and returned.
    """
    crop = []
    for d in range(3):
        size_e, size_d = earlier.shape[2 + d], deeper.shape[2 + d]
        start = (size_e - 1) // 2 - (size_d - 1) // 2
        crop.append(slice(start, start + size_d))
    part = earlier[(slice(None), slice(None)) + tuple(crop)]
    n = min(part.shape[1], deeper.shape[1])
    deeper[:, :n] += part[:, :n]  # deeper is always a fresh convolution output: in place
    return deeper


@dataclass(frozen=True)
class _Work:
    """Where :func:`run_tiles` computes: the output blocks that hold brain and the units the FC layers run on.

    Attributes
    ----------
    blk
        Output block size (``block`` when it divides the tile's output, else the whole output).
    k, c0
        The first FC layer's kernel and its centre offset.
    kept
        Per tile, the offsets of its output blocks that hold brain.
    units
        ``(tile index, offset in the tile's output, size)``: where the FC layers run.
    f_lo, box
        The normal pathway's maps are needed from ``f_lo`` (padded-image coordinates), over ``box``.
    windows
        Each unit's input window in the padded image, ``((lo, hi),) * 3``.
    """

    blk: int
    k: int
    c0: int
    kept: list[list[tuple[int, int, int]]]
    units: list[tuple[int, tuple[int, int, int], int]]
    f_lo: list[int]
    box: tuple[int, ...]
    windows: list[tuple[tuple[int, int], ...]]


def _plan_work(net: DeepMedic, plan: dict[str, Any], block: int) -> _Work:
    """The brain blocks of each tile and the units the FC layers run on (see :class:`_Work`)."""
    tiles, has_brain = plan["tiles"], plan["has_brain"]
    n_out = net.out_size
    half = (net.rec_field_net - 1) // 2
    k = net.rec_field_net - net.rec_field + 1  # the first FC layer's kernel
    blk = block if n_out % block == 0 else n_out
    offsets = [(i, j, l) for i in range(0, n_out, blk) for j in range(0, n_out, blk) for l in range(0, n_out, blk)]
    # output blocks of each tile that hold brain; the FC layers run on a tile's whole output when that
    # is cheaper than running them on its brain blocks one by one (each needs k - 1 voxels of context)
    kept = [[o for o in offsets if has_brain(tuple(v + half + oo for v, oo in zip(t, o)), blk)] for t in tiles]
    units = []
    for i, offs in enumerate(kept):
        if len(offs) * (blk + k - 1) ** 3 >= (n_out + k - 1) ** 3:
            units.append((i, (0, 0, 0), n_out))
        else:
            units.extend((i, o, blk) for o in offs)
    # the normal pathway's maps are needed in the units' input windows (feature coordinates)
    windows = [tuple((tiles[i][d] + o[d], tiles[i][d] + o[d] + n + k - 1) for d in range(3)) for i, o, n in units]
    f_lo = [min((w[d][0] for w in windows), default=0) for d in range(3)]
    f_hi = [max((w[d][1] for w in windows), default=0) for d in range(3)]
    box = tuple(max(h - lo_, 0) for lo_, h in zip(f_lo, f_hi))
    return _Work(blk=blk, k=k, c0=(k - 1) // 2, kept=kept, units=units, f_lo=f_lo, box=box, windows=windows)


def _slabs(work: _Work, slab: int) -> list[tuple[Any, ...]]:
    """Slabs of ``slab`` voxels along the first axis; in each, the range of the other two its windows cover."""
    slabs = []
    f_lo, box, windows = work.f_lo, work.box, work.windows
    for a0 in range(0, box[0], slab):
        b0 = min(a0 + slab, box[0])
        inside = [w for w in windows if w[0][0] - f_lo[0] < b0 and w[0][1] - f_lo[0] > a0]
        if inside:
            slabs.append((a0, b0) + tuple((min(w[d][0] for w in inside) - f_lo[d], max(w[d][1] for w in inside) - f_lo[d])
                                          for d in (1, 2)))
    return slabs


class TorchParts:
    """The three steps of :func:`run_tiles` in torch (the other runtimes: :mod:`.runtime`).

    - :meth:`normal`: the normal pathway on a slab ``(1, C, ...)`` -> ``(C_n, ...)``.
    - :meth:`subsampled`: a batch of tiles' subsampled inputs -> the first FC layer's part on them
      (``None`` without subsampled pathways) and the pathways' outputs.
    - :meth:`fc`: the FC layers on units (normal maps around them, the subsampled part and maps at
      them) -> float32 CPU logits.
    """

    name = "torch"

    def __init__(self, net: DeepMedic, device: torch.device) -> None:
        self.net, self.device = net, device
        self.folded = [fold_pathway(p) for p in (net.normal, *net.subsampled)]
        self.fc_folded = fc_fold(net)
        self.kernels = low_res_kernels(net, None if self.fc_folded is None else self.fc_folded[0])

    def normal(self, inp: torch.Tensor) -> torch.Tensor:
        """The normal pathway's maps of one slab."""
        return run_pathway(self.net.normal, self.folded[0], inp.to(self.device))[0]

    def subsampled(self, lrs: Sequence[torch.Tensor]) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The first FC layer's part on the subsampled maps of a batch of tiles, and those maps."""
        net = self.net
        lr_outs = [run_pathway(path, fp, x.to(self.device)) for path, fp, x in zip(net.subsampled, self.folded[1:], lrs)]
        return (_first_fc_subsampled(net, lr_outs, self.kernels) if lr_outs else None), lr_outs

    def fc(self, x_n: torch.Tensor, y_sub: torch.Tensor | None, u_c: torch.Tensor | None, c0: int) -> torch.Tensor:
        """Logits of units: ``x_n`` the normal maps of their windows, ``y_sub``/``u_c`` gathered at them."""
        net, fc = self.net, self.fc_folded
        first = net.fc.blocks[0]
        c_n = x_n.shape[1]
        size = x_n.shape[2] - (first.weight.shape[-1] - 1)
        w_n = first.weight[:, :c_n] * first.keep
        if fc is not None:  # the second FC block's batch norm, folded in (fc_fold)
            w_n = w_n * fc[0].view(-1, 1, 1, 1, 1)
        x_n = x_n.to(self.device)
        h1 = conv3d(first.activate(x_n, slice(0, c_n)), w_n, None if fc is None else fc[1])
        ctr = x_n[:, :, c0 : c0 + size, c0 : c0 + size, c0 : c0 + size]
        if y_sub is not None and u_c is not None:
            h1 = h1 + y_sub.to(h1.dtype)
            ctr = torch.cat([ctr, u_c.to(ctr.dtype)], dim=1)
        return _fc_rest(net, h1, ctr, folded=fc is not None).float().cpu()


def run_tiles(net: DeepMedic, plan: dict[str, Any], *, bf16: bool, device: torch.device,
              on_progress: ProgressCallback | None, cancel: CancelToken | None, batch_size: int,
              slab: int, block: int, parts: Any = None) -> torch.Tensor:
    """Logits ``(n_classes, *padded.shape)`` of DeepMedic's tiles of ``plan`` (see the module doc).

    ``parts`` computes the three steps (:class:`TorchParts` by default; :mod:`.runtime` for the others).
    """
    if net.rec_field_net == net.rec_field:  # mirror-padded first FC layer: tile by tile
        return _run_whole_tiles(net, plan, bf16=bf16, device=device, on_progress=on_progress, cancel=cancel,
                                batch_size=batch_size)
    work = _plan_work(net, plan, block)
    slabs = _slabs(work, slab)
    n_tiles = len(plan["tiles"])
    total = len(slabs) + math.ceil(n_tiles / batch_size)
    report(on_progress, 0, total, "DeepMedic")
    dtype = torch.bfloat16 if bf16 else torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu"):
        # 1. the normal pathway, densely, slab by slab where the units need it
        c_n = net.normal.blocks[-1].weight.shape[0]
        feats = torch.zeros((c_n,) + work.box, dtype=dtype)
        parts = TorchParts(net, device) if parts is None else parts
        r = net.rec_field - 1
        padded, f_lo = plan["padded"], work.f_lo
        for done, (a0, b0, (a1, b1), (a2, b2)) in enumerate(slabs, start=1):
            check(cancel)
            inp = torch.from_numpy(np.ascontiguousarray(padded[
                :, f_lo[0] + a0 : f_lo[0] + b0 + r, f_lo[1] + a1 : f_lo[1] + b1 + r,
                f_lo[2] + a2 : f_lo[2] + b2 + r]))[None]
            feats[:, a0:b0, a1:b1, a2:b2] = parts.normal(inp).to("cpu", dtype)
            report(on_progress, done, total, "DeepMedic normal pathway")
        # 2. per batch of tiles: subsampled pathways and the first FC layer's part on them (low
        #    resolution), then per unit the part on the normal maps and the other FC layers
        out = torch.zeros((net.n_classes,) + padded.shape[1:], dtype=torch.float32)
        by_tile: dict[int, list[tuple[tuple[int, int, int], int]]] = {}
        for i, o, n in work.units:
            by_tile.setdefault(i, []).append((o, n))
        for done, start in enumerate(range(0, n_tiles, batch_size), start=len(slabs) + 1):
            check(cancel)
            idx = [i for i in range(start, min(start + batch_size, n_tiles)) if i in by_tile]
            if idx:
                _tile_batch(net, plan, work, feats, out, idx, by_tile, parts)
            report(on_progress, done, total, "DeepMedic tiles")
    return out


def _tile_batch(net: DeepMedic, plan: dict[str, Any], work: _Work, feats: torch.Tensor, out: torch.Tensor,
                idx: list[int], by_tile: dict[int, list[tuple[tuple[int, int, int], int]]], parts: Any) -> None:
    """One batch of tiles ``idx``: subsampled pathways, then the FC layers per unit, written into ``out``."""
    padded, tiles, bg = plan["padded"], plan["tiles"], plan["background"]
    lrs = [torch.from_numpy(np.stack([
        subsampled_segment(padded, bg, tiles[i], f, net.rec_field, net.path_out_size, net.subsampled_input_size(f))
        for i in idx])) for f in net.factors]
    y_sub, lr_outs = parts.subsampled(lrs) if lrs else (None, [])
    u_c = _repeat_centre(net, lr_outs, work.c0, net.out_size) if lr_outs else None
    for size in sorted({n for i in idx for _, n in by_tile[i]}):
        todo = [(b_i, i, o) for b_i, i in enumerate(idx) for o, n in by_tile[i] if n == size]
        sl = [(b_i, tuple(slice(o[d], o[d] + size) for d in range(3))) for b_i, _, o in todo]
        win = [tuple(slice(tiles[i][d] + o[d] - work.f_lo[d], tiles[i][d] + o[d] - work.f_lo[d] + size + work.k - 1)
                     for d in range(3)) for _, i, o in todo]
        x_n = torch.stack([feats[(slice(None),) + w] for w in win])
        ys = _gather(y_sub, sl, size) if y_sub is not None else None
        uc = _gather(u_c, sl, size) if u_c is not None else None
        logits = parts.fc(x_n, ys, uc, work.c0)
        _write_blocks(net, out, work, tiles, [(i, o) for _, i, o in todo], logits, size)


def _gather(t: torch.Tensor, sl: list[tuple[int, tuple[slice, ...]]], size: int) -> torch.Tensor:
    """``t[b_i][:, s]`` for each ``(b_i, s)`` of ``sl``, stacked; whole outputs without a copy when possible."""
    if size == t.shape[2]:  # whole tile outputs: the slices are everything
        rows = [b_i for b_i, _ in sl]
        return t if rows == list(range(t.shape[0])) else t[rows]
    return torch.stack([t[(b_i, slice(None)) + s] for b_i, s in sl])


def _write_blocks(net: DeepMedic, out: torch.Tensor, work: _Work, tiles: list[tuple[int, ...]],
                  todo: list[tuple[int, tuple[int, int, int]]], logits: torch.Tensor, size: int) -> None:
    """Write the brain blocks of each unit's ``logits`` (tile ``i``, offset ``o``) into ``out``."""
    blk = work.blk
    half = (net.rec_field_net - 1) // 2
    for (i, o), lg in zip(todo, logits):
        for ob in work.kept[i]:
            if all(o[d] <= ob[d] < o[d] + size for d in range(3)):
                v = [tiles[i][d] + half + ob[d] for d in range(3)]
                out[(slice(None),) + tuple(slice(v[d], v[d] + blk) for d in range(3))] = \
                    lg[(slice(None),) + tuple(slice(ob[d] - o[d], ob[d] - o[d] + blk) for d in range(3))]


def _repeat_centre(net: DeepMedic, lr_outs: Sequence[torch.Tensor], c0: int, n: int) -> torch.Tensor:
    """The subsampled maps repeated to full resolution at a tile's ``n^3`` output voxels (from ``c0``).

    Each map repeated ``f`` times along each axis by a broadcast view (one copy), then cut.
    """
    outs = []
    for f, lr in zip(net.factors, lr_outs):
        b, c, l0, l1, l2 = lr.shape
        rep = lr[:, :, :, None, :, None, :, None].expand(b, c, l0, f, l1, f, l2, f).reshape(b, c, l0 * f, l1 * f, l2 * f)
        outs.append(rep[:, :, c0 : c0 + n, c0 : c0 + n, c0 : c0 + n])
    return torch.cat(outs, dim=1)


def _run_whole_tiles(net: DeepMedic, plan: dict[str, Any], *, bf16: bool, device: torch.device,
                     on_progress: ProgressCallback | None, cancel: CancelToken | None,
                     batch_size: int) -> torch.Tensor:
    """Every tile through the whole network, later tiles overwriting earlier ones (DeepMedic's way)."""
    padded, tiles, bg = plan["padded"], plan["tiles"], plan["background"]
    half = (net.rec_field_net - 1) // 2
    s, n_out = net.segment_size, net.out_size
    out = torch.zeros((net.n_classes,) + padded.shape[1:], dtype=torch.float32)
    total = math.ceil(len(tiles) / batch_size)
    report(on_progress, 0, total, "DeepMedic")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu"):
        for done, start in enumerate(range(0, len(tiles), batch_size), start=1):
            check(cancel)
            batch = tiles[start : start + batch_size]
            hr = torch.from_numpy(np.stack([padded[(slice(None),) + tuple(slice(v, v + s) for v in t)]
                                            for t in batch]))
            lrs = [torch.from_numpy(np.stack([
                subsampled_segment(padded, bg, t, f, net.rec_field, net.path_out_size, net.subsampled_input_size(f))
                for t in batch])).to(device) for f in net.factors]
            logits = net.forward_segments(hr.to(device), lrs).float().cpu()
            for t, lg in zip(batch, logits):
                out[(slice(None),) + tuple(slice(v + half, v + half + n_out) for v in t)] = lg
            report(on_progress, done, total, "DeepMedic tiles")
    return out
