"""DeepMedic (Kamnitsas et al., Medical Image Analysis 2017) in PyTorch, and CaPTk's pretrained model.

Architecture (DeepMedic 0.8.x, as configured by CaPTk's ``modelConfig.txt``)
---------------------------------------------------------------------------
- Three pathways of 8 valid 3x3x3 convolutions (10, 12, 14, 16, 18, 20, 22, 25 maps): a *normal* one at
  full resolution and two *subsampled* ones that see the image every 3rd / 5th voxel around the same
  centre; their outputs are brought back to full resolution by repetition (``repeat``) and the first
  voxels kept.
- Every layer is a pre-activation block: ``[batch norm | bias] -> [PReLU | linear] -> [dropout] -> conv``.
  The first block of a pathway works on the image: a per-channel bias, no activation. Convolutions have
  no bias.
- Residual connections at layers 4, 6, 8 (1-based): the output of layer k gets the *input of layer k-1*
  added, centre-cropped to the same size, with zero channels appended where it has fewer maps.
- The 75 concatenated maps go through the "fully connected" pathway made of convolutions: batch norm +
  PReLU + 3x3x3 conv (60 maps, its input mirror-padded by one voxel so the size is kept), then
  ``BN -> PReLU -> dropout(0.3) -> 1x1x1`` (80 maps, plus the residual from the FC input), then
  ``BN -> PReLU -> dropout(0.3) -> 1x1x1`` (5 classes) and the softmax layer's own bias.
- At inference batch norm uses the mean over the stored rolling averages (``muBnsForRollingAverage``,
  ``varBnsForRollingAverage``) and dropout multiplies its input by the keep probability (0.7).

Inference (:meth:`DeepMedic.predict_volume`) tiles the volume as DeepMedic's testing routine does:
the image is padded by half the receptive field (8 voxels), segments of 45^3 inputs are taken at
strides of 29 (the voxels one segment predicts), the last one along an axis shifted back to end at the
border, segments with no brain voxel are skipped, and later segments overwrite earlier ones where they
overlap. The subsampled pathways' inputs are cut out of the image around each segment exactly as
DeepMedic's ``get_subsampl_segment`` does (including its handling of the low image border), filled
with the image's border intensity outside it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..progress import CancelToken, ProgressCallback, check, report
from .spec import LoadedModel, ModelSpec
from .tf_checkpoint import read_checkpoint

#: The CaPTk model's architecture (``modelConfig.txt``), as constructor arguments of :class:`DeepMedic`.
CAPTK_ARCH: dict[str, Any] = {
    "in_channels": 4,
    "n_classes": 5,
    "fms_normal": [10, 12, 14, 16, 18, 20, 22, 25],
    "fms_subsampled": [10, 12, 14, 16, 18, 20, 22, 25],
    "subsample_factors": [3, 5],
    "residual_layers": [4, 6, 8],
    "fms_fc": [60, 80],
    "fc_kernel": 3,
    "residual_layers_fc": [2],
    "dropout_fc": [0.0, 0.3, 0.3],
    "fc_padding": "valid",
    "segment_size": 45,
}

_CAPTK_LICENCE = (
    "CaPTk (CBICA, University of Pennsylvania) distributes this model under the CBICA Software License "
    "(https://www.med.upenn.edu/cbica/software-agreement.html); DeepMedic's code is BSD-3-Clause "
    "(https://github.com/deepmedic/deepmedic). The weights are not redistributed by napari-brats-seg: "
    "obtain them with CaPTk (data/deepMedic/saved_models/brainTumorSegmentation/)."
)


class _PreActConv(nn.Module):
    """``[BN | bias] -> [PReLU | linear] -> dropout scaling -> conv`` (DeepMedic's ConvBlock, inference).

    Batch norm (or the first layer's bias) is stored as a per-channel affine ``x * scale + shift``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, *, activation: bool, pad_mirror: bool = False) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(c_in))
        self.register_buffer("shift", torch.zeros(c_in))
        self.prelu = nn.Parameter(torch.zeros(c_in)) if activation else None
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, kernel, kernel, kernel))
        self.keep = 1.0
        self.pad = (kernel - 1) // 2 if pad_mirror else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1, 1)
        x = x * self.scale.view(shape).to(x.dtype) + self.shift.view(shape).to(x.dtype)
        if self.prelu is not None:
            x = F.prelu(x, self.prelu.to(x.dtype))
        if self.pad:
            # DeepMedic's pad_by_mirroring: for one voxel per side this repeats the border voxel.
            x = F.pad(x, (self.pad,) * 6, mode="replicate")
        w = self.weight if self.keep == 1.0 else self.weight * self.keep
        return F.conv3d(x, w.to(x.dtype))


def _residual(earlier: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
    """Add ``earlier`` (centre-cropped, zero channels appended) to ``deeper`` (DeepMedic's residual)."""
    crop = []
    for d in range(3):
        size_e, size_d = earlier.shape[2 + d], deeper.shape[2 + d]
        start = (size_e - 1) // 2 - (size_d - 1) // 2
        crop.append(slice(start, start + size_d))
    part = earlier[(slice(None), slice(None)) + tuple(crop)]
    n = min(part.shape[1], deeper.shape[1])
    out = deeper.clone()
    out[:, :n] += part[:, :n]
    return out


class _Pathway(nn.Module):
    """A stack of pre-activation convolutions with DeepMedic's residual connections."""

    def __init__(self, c_in: int, fms: Sequence[int], kernels: Sequence[int], residual_layers: Sequence[int],
                 *, first_activation: bool, pad_first_mirror: bool = False) -> None:
        super().__init__()
        blocks = []
        prev = c_in
        for i, (c_out, k) in enumerate(zip(fms, kernels)):
            blocks.append(_PreActConv(prev, c_out, k, activation=(i > 0 or first_activation),
                                      pad_mirror=(i == 0 and pad_first_mirror)))
            prev = c_out
        self.blocks = nn.ModuleList(blocks)
        self.residual_idx = {int(n) - 1 for n in residual_layers}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp_prev: torch.Tensor | None = None
        inp = x
        for i, block in enumerate(self.blocks):
            out = block(inp)
            if i in self.residual_idx:
                assert inp_prev is not None
                out = _residual(inp_prev, out)
            inp_prev, inp = inp, out
        return inp


class DeepMedic(nn.Module):
    """The multi-scale DeepMedic network (inference), mapping a volume to same-size class logits.

    Parameters
    ----------
    in_channels, n_classes
        Input channels and output classes (background included).
    fms_normal, fms_subsampled
        Feature maps per 3x3x3 layer of the normal and of each subsampled pathway.
    subsample_factors
        One isotropic factor per subsampled pathway (e.g. ``[3, 5]``).
    residual_layers
        1-based layers whose output gets the input of the previous layer added.
    fms_fc, fc_kernel, residual_layers_fc, dropout_fc
        Hidden "fully connected" layers, the kernel of the first (mirror-padded), their residual
        layers and the dropout rate of each FC layer including the classifier (applied at inference as
        a multiplication by the keep probability).
    segment_size
        Input size of the normal pathway's tiles at inference (DeepMedic's ``segmentsDimInference``).
    """

    def __init__(self, in_channels: int = 4, n_classes: int = 5,
                 fms_normal: Sequence[int] = (10, 12, 14, 16, 18, 20, 22, 25),
                 fms_subsampled: Sequence[int] = (10, 12, 14, 16, 18, 20, 22, 25),
                 subsample_factors: Sequence[int] = (3, 5), residual_layers: Sequence[int] = (4, 6, 8),
                 fms_fc: Sequence[int] = (60, 80), fc_kernel: int = 3, residual_layers_fc: Sequence[int] = (2,),
                 dropout_fc: Sequence[float] = (0.0, 0.3, 0.3), fc_padding: str = "valid",
                 segment_size: int = 45) -> None:
        super().__init__()
        if fc_padding not in ("valid", "mirror"):
            raise ModelError(f"DeepMedic fc_padding must be 'valid' or 'mirror', not {fc_padding!r}")
        n_layers = len(fms_normal)
        self.rec_field = 1 + 2 * n_layers  # of the pathways: 3x3x3 valid convolutions
        self.rec_field_net = self.rec_field + (fc_kernel - 1 if fc_padding == "valid" else 0)
        self.factors = [int(f) for f in subsample_factors]
        self.segment_size = int(segment_size)
        self.path_out_size = self.segment_size - self.rec_field + 1
        self.out_size = self.segment_size - self.rec_field_net + 1
        if self.out_size < 1:
            raise ModelError(f"DeepMedic segment size {segment_size} is smaller than the receptive field")
        self.n_classes = int(n_classes)
        kernels = [3] * n_layers
        self.normal = _Pathway(in_channels, fms_normal, kernels, residual_layers, first_activation=False)
        self.subsampled = nn.ModuleList(
            _Pathway(in_channels, fms_subsampled, kernels, residual_layers, first_activation=False)
            for _ in self.factors
        )
        c_fc = fms_normal[-1] + len(self.factors) * fms_subsampled[-1]
        fc_fms = list(fms_fc) + [n_classes]
        fc_kernels = [fc_kernel] + [1] * len(fms_fc)
        self.fc = _Pathway(c_fc, fc_fms, fc_kernels, residual_layers_fc, first_activation=True,
                           pad_first_mirror=(fc_padding == "mirror"))
        for block, rate in zip(self.fc.blocks, dropout_fc):
            block.keep = 1.0 - float(rate) if rate > 0.001 else 1.0
        self.class_bias = nn.Parameter(torch.zeros(n_classes))
        #: ``"fp32"`` or ``"bf16"`` (bfloat16 autocast + channels-last in :meth:`predict_volume`).
        self.precision = "fp32"
        self.eval()

    # ------------------------------------------------------------------ one batch of segments

    def subsampled_input_size(self, factor: int) -> int:
        """Input size of a subsampled pathway for one segment (DeepMedic's ``calc_inp_dims...``)."""
        return math.ceil(self.path_out_size / factor) + self.rec_field - 1

    def forward_segments(self, x_hr: torch.Tensor, x_lr: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits of a batch of segments.

        Parameters
        ----------
        x_hr
            ``(N, C, S, S, S)`` normal-pathway inputs (``S = segment_size``).
        x_lr
            One ``(N, C, s_f, s_f, s_f)`` input per subsampled pathway, cut out as
            :func:`subsampled_segment` does.

        Returns
        -------
        torch.Tensor
            ``(N, n_classes, S - R + 1, ...)`` logits before the softmax, ``R`` = :attr:`rec_field_net`.
        """
        return self._head(self.normal(x_hr), x_lr)

    # ------------------------------------------------------------------ whole volumes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`predict_volume` without progress: ``(1, C, a0, a1, a2)`` -> logits of that size."""
        return self.predict_volume(x)

    @torch.no_grad()
    def predict_volume(self, x: torch.Tensor, on_progress: ProgressCallback | None = None,
                       cancel: CancelToken | None = None, *, origin: Sequence[int] | None = None,
                       image_shape: Sequence[int] | None = None, batch_size: int = 8,
                       slab: int = 40, block: int = 9) -> torch.Tensor:
        """Segment a whole normalised volume tile by tile, as DeepMedic's testing routine does.

        The normal pathway has only valid convolutions, so its output at a voxel does not depend on
        the tile: it is computed once, densely, in chunks where the FC layers need it
        (DeepMedic recomputes it for every 45^3 tile, 3.7 times the work). The subsampled pathways and
        the FC layers depend on the tile (the subsampled grid is anchored to it, and the repeat
        upsampling and the 3x3x3 FC layer see only the tile), so they run per tile, in batches.

        Parameters
        ----------
        x
            ``(1, C, a0, a1, a2)`` normalised image in the model's voxel order (LPS). Values equal to
            the mean of the 8 corner voxels of a channel (the background of a normalised, zero-outside
            BraTS image) are taken as outside the brain; the volume is extended with those values, so a
            crop to the brain's bounding box gives the same result as the whole image up to where the
            tiles fall.
        on_progress
            ``on_progress(done, total, message)`` after each chunk of the normal pathway and each batch
            of tiles; ``total`` is known before the first call.
        cancel
            Checked before each chunk and batch; raises :class:`~napari_brats_seg.core.errors.Cancelled`.
        origin, image_shape
            Where ``x`` lies in the whole image (index of its first voxel, model axes) and that image's
            spatial shape. When given, the tiles fall where DeepMedic puts them on the whole image
            (which the image outside ``x`` is taken to be background), so that a crop to the brain
            gives the original implementation's result; without them ``x`` is taken as the whole
            image. The tiling changes the output slightly: DeepMedic's subsampled inputs are anchored
            to the tiles and shifted near the image's low border.
        batch_size
            Tiles per forward pass of the subsampled and FC layers.
        slab
            The dense normal pathway runs in chunks of ``slab x slab`` voxels along the first two axes
            (the whole third axis), only where FC blocks need its output.
        block
            The FC layers run on blocks of ``block^3`` output voxels of a tile, and only on those that
            hold brain (outside the brain the labels are background anyway).

        Returns
        -------
        torch.Tensor
            ``(1, n_classes, a0, a1, a2)`` float32 logits; voxels of blocks without brain are 0.

        Notes
        -----
        Runs in bfloat16 with channels-last tensors when :attr:`precision` is ``"bf16"`` or a CPU
        bf16 autocast is active around the call; otherwise float32.
        """
        if x.ndim != 5 or x.shape[0] != 1:
            raise ModelError(f"DeepMedic expects a (1, C, a0, a1, a2) volume, got {tuple(x.shape)}")
        device = next(self.parameters()).device
        bf16 = self.precision == "bf16" or (device.type == "cpu" and torch.is_autocast_enabled("cpu")
                                            and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        img = x[0].detach().to("cpu", torch.float32).numpy()
        region = tuple(slice(0, n) for n in img.shape[1:])
        if origin is not None or image_shape is not None:
            if origin is None or image_shape is None or len(origin) != 3 or len(image_shape) != 3:
                raise ModelError("predict_volume needs both origin and image_shape (3 values each), or neither")
            region = tuple(slice(int(o), int(o) + n) for o, n in zip(origin, img.shape[1:]))
            if any(r.start < 0 or r.stop > int(m) for r, m in zip(region, image_shape)):
                raise ModelError(f"a volume of shape {img.shape[1:]} at {tuple(origin)} does not fit in an "
                                 f"image of shape {tuple(image_shape)}")
            whole = np.empty((img.shape[0],) + tuple(int(m) for m in image_shape), np.float32)
            whole[:] = corner_background(img)[:, None, None, None]
            whole[(slice(None),) + region] = img
            img = whole
        plan = plan_tiles(img, self.rec_field_net, self.segment_size)
        padded, tiles, pad_lo, bg = plan["padded"], plan["tiles"], plan["pad_lo"], plan["background"]
        shape = padded.shape[1:]
        p = self.path_out_size
        half = (self.rec_field_net - 1) // 2
        ctx = self.rec_field_net - self.rec_field  # context the FC layers need (0 when padded)
        blk = block if ctx > 0 and self.out_size % block == 0 else self.out_size
        offsets = [(i, j, k) for i in range(0, self.out_size, blk) for j in range(0, self.out_size, blk)
                   for k in range(0, self.out_size, blk)]
        has_brain = plan["has_brain"]
        # the FC layers run only on output blocks that hold brain (exact: they are valid convolutions)
        kept = [[o for o in offsets if has_brain(tuple(v + half + oo for v, oo in zip(t, o)), blk)] for t in tiles]
        # the normal pathway's output is needed only in those blocks' windows (feature coordinates)
        windows = [tuple((t[d] + o[d], t[d] + o[d] + blk + ctx) for d in range(3))
                   for t, offs in zip(tiles, kept) for o in offs]
        f_lo = [min((w[d][0] for w in windows), default=0) for d in range(3)]
        f_hi = [max((w[d][1] for w in windows), default=0) for d in range(3)]
        feat_shape = tuple(max(h - lo_, 0) for lo_, h in zip(f_lo, f_hi))
        n_chunks = [math.ceil(n / slab) for n in feat_shape[:2]]
        need = np.zeros(n_chunks, bool)
        for w in windows:
            need[(w[0][0] - f_lo[0]) // slab : (w[0][1] - 1 - f_lo[0]) // slab + 1,
                 (w[1][0] - f_lo[1]) // slab : (w[1][1] - 1 - f_lo[1]) // slab + 1] = True
        n_batches = math.ceil(len(tiles) / batch_size)
        total = int(need.sum()) + n_batches
        done = 0
        report(on_progress, 0, total, "DeepMedic")
        r = self.rec_field - 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu"):
            # 1. the normal pathway, densely, in chunks of slab x slab x (all) where blocks need it
            feats = torch.zeros((self.normal.blocks[-1].weight.shape[0],) + feat_shape,
                                dtype=torch.bfloat16 if bf16 else torch.float32)
            for i0, i1 in zip(*np.nonzero(need)):
                check(cancel)
                a0, b0 = i0 * slab, min((i0 + 1) * slab, feat_shape[0])
                a1, b1 = i1 * slab, min((i1 + 1) * slab, feat_shape[1])
                inp = torch.from_numpy(np.ascontiguousarray(padded[
                    :, f_lo[0] + a0 : f_lo[0] + b0 + r, f_lo[1] + a1 : f_lo[1] + b1 + r,
                    f_lo[2] : f_lo[2] + feat_shape[2] + r]))[None].to(device)
                feats[:, a0:b0, a1:b1] = self.normal(self._prep(inp, bf16))[0].to("cpu", feats.dtype)
                done += 1
                report(on_progress, done, total, "DeepMedic normal pathway")
            # 2. per tile: the subsampled pathways, then the FC layers on the kept blocks
            out = torch.zeros((self.n_classes,) + tuple(shape), dtype=torch.float32)
            for start in range(0, len(tiles), batch_size):
                check(cancel)
                batch = tiles[start : start + batch_size]
                lrs = [
                    torch.from_numpy(np.stack([
                        subsampled_segment(padded, bg, t, f, self.rec_field, p, self.subsampled_input_size(f))
                        for t in batch]))
                    for f in self.factors
                ]
                ups = self._upsampled(p, [self._prep(a.to(device), bf16) for a in lrs])
                where = [(b_i, t, o) for b_i, t in enumerate(batch) for o in kept[start + b_i]]
                if where:
                    w = blk + ctx
                    c_n = feats.shape[0]
                    x_fc = torch.empty((len(where), c_n + ups.shape[1], w, w, w), dtype=ups.dtype, device=device)
                    if bf16:
                        x_fc = x_fc.contiguous(memory_format=torch.channels_last_3d)
                    for i, (b_i, t, o) in enumerate(where):
                        x_fc[i, :c_n] = feats[(slice(None),) + tuple(slice(v + oo - fl, v + oo - fl + w)
                                                                    for v, oo, fl in zip(t, o, f_lo))]
                        x_fc[i, c_n:] = ups[(b_i, slice(None)) + tuple(slice(oo, oo + w) for oo in o)]
                    logits = (self.fc(x_fc) + self.class_bias.view(1, -1, 1, 1, 1).to(x_fc.dtype)).float().cpu()
                    for (_, t, o), lg in zip(where, logits):
                        sl = tuple(slice(v + half + oo, v + half + oo + blk) for v, oo in zip(t, o))
                        out[(slice(None),) + sl] = lg
                done += 1
                report(on_progress, done, total, "DeepMedic tiles")
        crop = tuple(slice(a + r.start, a + r.stop) for a, r in zip(pad_lo, region))
        return out[(slice(None),) + crop].unsqueeze(0).to(x.device)

    @staticmethod
    def _prep(t: torch.Tensor, bf16: bool) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last_3d) if bf16 else t

    def _upsampled(self, size: int, x_lr: Sequence[torch.Tensor]) -> torch.Tensor:
        """Subsampled pathways, repeated back to full resolution and cut to ``size``, concatenated."""
        outs = []
        for path, f, xs in zip(self.subsampled, self.factors, x_lr):
            lr = path(xs)
            for d in range(3):
                lr = lr.repeat_interleave(f, dim=2 + d)
            outs.append(lr[:, :, :size, :size, :size])
        return torch.cat(outs, dim=1)

    def _concat(self, normal_out: torch.Tensor, x_lr: Sequence[torch.Tensor]) -> torch.Tensor:
        """Subsampled pathways, their repeat upsampling, and the concatenation with the normal output."""
        size = normal_out.shape[2:]
        assert size[0] == size[1] == size[2]
        if not x_lr:
            return normal_out
        ups = self._upsampled(int(size[0]), x_lr)
        return torch.cat([normal_out.to(ups.dtype), ups], dim=1)

    def _head(self, normal_out: torch.Tensor, x_lr: Sequence[torch.Tensor]) -> torch.Tensor:
        """Subsampled pathways, upsampling, concatenation and FC layers for a batch of tiles."""
        logits = self.fc(self._concat(normal_out, x_lr))
        return logits + self.class_bias.view(1, -1, 1, 1, 1).to(logits.dtype)


def corner_background(img: np.ndarray) -> np.ndarray:
    """Per channel of ``(C, a0, a1, a2)``, the mean of the 8 corner voxels (DeepMedic's "border intensity")."""
    return np.array([np.mean([c[i, j, k] for i in (0, -1) for j in (0, -1) for k in (0, -1)]) for c in img],
                    dtype=np.float32)


def plan_tiles(img: np.ndarray, rec_field: int, segment: int) -> dict[str, Any]:
    """Pad a ``(C, a0, a1, a2)`` image and list DeepMedic's inference tiles.

    The image is extended by ``(rec_field - 1) // 2`` voxels per side (more on the high side when it
    is smaller than a segment) with each channel's background value (the mean of its 8 corners);
    tiles are the lower corners of ``segment^3`` inputs at strides of ``segment - rec_field + 1``, the
    last one along each axis shifted back to end at the border; tiles whose output holds no brain voxel
    (any channel different from its background) are left out. ``has_brain(lo, size)`` tells whether a
    box of the padded image holds brain.
    """
    bg = corner_background(img)
    lo = (rec_field - 1) // 2
    hi = rec_field - 1 - lo
    pads = []
    for n in img.shape[1:]:
        extra = max(0, segment - (n + lo + hi))
        pads.append((lo, hi + extra))
    padded = np.empty((img.shape[0],) + tuple(n + a + b for n, (a, b) in zip(img.shape[1:], pads)), np.float32)
    for c in range(img.shape[0]):
        padded[c] = np.pad(img[c], pads, mode="constant", constant_values=float(bg[c]))
    brain = np.any(padded != bg[:, None, None, None], axis=0)
    stride = segment - rec_field + 1
    starts = []
    for n in padded.shape[1:]:
        axis_starts = []
        nxt = 0
        while True:
            far = min(nxt + segment, n)
            axis_starts.append(far - segment)
            nxt += stride
            if far >= n:
                break
        starts.append(axis_starts)
    # DeepMedic loops z outermost, then c, then r; later tiles overwrite earlier ones. It keeps tiles
    # whose input holds brain; tiles whose *output* holds none change no label inside the brain (they
    # only overwrite voxels outside it), so they are left out too. Sums over boxes: summed-area table.
    sat = np.pad(brain.astype(np.int32), ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)

    def has_brain(lo: tuple[int, ...], size: int) -> bool:
        r, c, z = (max(v, 0) for v in lo)
        r1, c1, z1 = (min(v + size, n) for v, n in zip(lo, brain.shape))
        if r1 <= r or c1 <= c or z1 <= z:
            return False
        s = (sat[r1, c1, z1] - sat[r, c1, z1] - sat[r1, c, z1] - sat[r1, c1, z] + sat[r, c, z1] + sat[r, c1, z]
             + sat[r1, c, z] - sat[r, c, z])
        return bool(s > 0)

    half = (rec_field - 1) // 2
    tiles = [(r, c, z) for z in starts[2] for c in starts[1] for r in starts[0]
             if has_brain((r + half, c + half, z + half), stride)]
    return {"padded": padded, "tiles": tiles, "pad_lo": [p[0] for p in pads], "background": bg,
            "has_brain": has_brain}


def subsampled_segment(channels: np.ndarray, background: np.ndarray, tile_lo: Sequence[int], factor: int,
                       rec_field: int, out_size: int, size: int) -> np.ndarray:
    """The input of a subsampled pathway for one tile, as DeepMedic's ``get_subsampl_segment`` builds it.

    Voxels every ``factor`` along each axis, starting ``((factor - 1) // 2) * rec_field`` voxels (plus
    the centre of a factor-wide cell) before the tile, so that the pathway's output lines up with the
    normal pathway's; outside the image the channel's background value. Near the low border DeepMedic
    places the in-image samples at ``|low| // factor``, which shifts their grid; that is reproduced.
    """
    c_n = channels.shape[0]
    dims = channels.shape[1:]
    out = np.empty((c_n, size, size, size), np.float32)
    out[:] = background[:, None, None, None]
    if factor % 2 == 1:
        before, centre = (factor - 1) // 2 * rec_field, factor // 2
    else:
        before, centre = (factor - 2) // 2 * rec_field + rec_field // 2, factor // 2 - 1
    src, dst = [], []
    for d in range(3):
        low = tile_lo[d] + centre - before
        high = int(low + factor * rec_field + (math.ceil(out_size / factor) - 1) * factor)
        low_c, high_c = max(low, 0), min(high, dims[d])
        put = 0 if low >= 0 else abs(low) // factor
        n = max(0, math.ceil((high_c - low_c) / factor))
        n = min(n, size - put)
        src.append(slice(low_c, low_c + factor * n, factor))
        dst.append(slice(put, put + n))
    out[(slice(None),) + tuple(dst)] = channels[(slice(None),) + tuple(src)]
    return out


# ---------------------------------------------------------------------------------------- loading


def _indexed(variables: dict[str, np.ndarray], base: str) -> list[np.ndarray]:
    """``net/<base>``, ``net/<base>_1``, ... in creation order."""
    pat = re.compile(rf"^net/{re.escape(base)}(?:_(\d+))?$")
    found = {}
    for name, arr in variables.items():
        m = pat.match(name)
        if m:
            found[int(m.group(1)) if m.group(1) else 0] = arr
    return [found[i] for i in range(len(found))]


def load_tf_variables(net: DeepMedic, variables: dict[str, np.ndarray]) -> None:
    """Copy DeepMedic 0.8 checkpoint variables (``net/*``) into ``net``.

    TensorFlow numbers same-named variables in creation order: pathway by pathway (normal, then each
    subsampled, then FC), block by block. A pathway's first block has a bias ``b`` and no batch norm;
    every other block has ``gBn``, ``bBn``, rolling averages and ``aPrelu``; the softmax layer's bias is
    the last ``b``.
    """
    W = _indexed(variables, "W")
    b = _indexed(variables, "b")
    g = _indexed(variables, "gBn")
    beta = _indexed(variables, "bBn")
    mu = _indexed(variables, "muBnsForRollingAverage")
    var = _indexed(variables, "varBnsForRollingAverage")
    a = _indexed(variables, "aPrelu")
    pathways = [net.normal, *net.subsampled, net.fc]
    n_blocks = sum(len(p.blocks) for p in pathways)
    n_bn = n_blocks - (1 + len(net.subsampled))
    if len(W) != n_blocks or len(g) != n_bn or len(a) != n_bn or len(b) != 2 + len(net.subsampled):
        raise ModelError(
            f"checkpoint does not match the DeepMedic architecture: {len(W)} convolutions (expected {n_blocks}), "
            f"{len(g)} batch norms (expected {n_bn}), {len(b)} biases"
        )
    iw = ibn = ib = 0
    with torch.no_grad():
        for p_i, path in enumerate(pathways):
            for k, block in enumerate(path.blocks):
                w = W[iw]; iw += 1
                if tuple(block.weight.shape) != w.shape:
                    raise ModelError(f"checkpoint convolution {iw - 1} has shape {w.shape}, "
                                     f"expected {tuple(block.weight.shape)}")
                block.weight.copy_(torch.from_numpy(w))
                is_fc = path is net.fc
                if k == 0 and not is_fc:
                    block.scale.fill_(1.0)
                    block.shift.copy_(torch.from_numpy(b[ib])); ib += 1
                else:
                    m = mu[ibn].astype(np.float64).mean(axis=0)
                    v = var[ibn].astype(np.float64).mean(axis=0)
                    inv = g[ibn].astype(np.float64) / np.sqrt(v + np.finfo(np.float32).tiny)
                    block.scale.copy_(torch.from_numpy(inv.astype(np.float32)))
                    block.shift.copy_(torch.from_numpy((beta[ibn] - m * inv).astype(np.float32)))
                    assert block.prelu is not None
                    block.prelu.copy_(torch.from_numpy(a[ibn]))
                    ibn += 1
        net.class_bias.copy_(torch.from_numpy(b[ib]))


def _parse_config(path: Path) -> dict[str, Any]:
    """Read the simple ``key = value`` lines of a DeepMedic ``modelConfig.txt`` (Python literals)."""
    import ast

    cfg: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        try:
            cfg[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            continue
    return cfg


def arch_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """:class:`DeepMedic` arguments from a parsed ``modelConfig.txt`` (CaPTk defaults where absent)."""
    arch = dict(CAPTK_ARCH)
    arch["in_channels"] = int(cfg.get("numberOfInputChannels", arch["in_channels"]))
    arch["n_classes"] = int(cfg.get("numberOfOutputClasses", arch["n_classes"]))
    arch["fms_normal"] = list(cfg.get("numberFMsPerLayerNormal", arch["fms_normal"]))
    arch["fms_subsampled"] = list(cfg.get("numberFMsPerLayerSubsampled", arch["fms_normal"]))
    if "subsampleFactor" in cfg:
        factors = cfg["subsampleFactor"]
        if factors and not isinstance(factors[0], (list, tuple)):
            factors = [factors]
        if any(len(set(f)) != 1 for f in factors):
            raise ModelError("only isotropic DeepMedic subsampling factors are supported")
        arch["subsample_factors"] = [int(f[0]) for f in factors]
    arch["residual_layers"] = list(cfg.get("layersWithResidualConnNormal", arch["residual_layers"]))
    arch["fms_fc"] = list(cfg.get("numberFMsPerLayerFC", arch["fms_fc"]))
    k1 = cfg.get("kernelDimPerLayerFC", [cfg.get("kernelDimFor1stFcLayer", [3, 3, 3])])[0]
    arch["fc_kernel"] = int(k1[0])
    arch["residual_layers_fc"] = list(cfg.get("layersWithResidualConnFC", arch["residual_layers_fc"]))
    arch["dropout_fc"] = list(cfg.get("dropoutRatesFc", arch["dropout_fc"]))
    seg = cfg.get("segmentsDimInference", [arch["segment_size"]] * 3)
    arch["segment_size"] = int(seg[0])
    for key in ("kernelDimPerLayerNormal", "kernelDimPerLayerSubsampled"):
        if key in cfg and any(list(k) != [3, 3, 3] for k in cfg[key]):
            raise ModelError(f"{key}: only 3x3x3 DeepMedic kernels are supported")
    if cfg.get("activationFunction", "prelu") != "prelu":
        raise ModelError("only PReLU DeepMedic models are supported")
    return arch


def captk_spec(arch: dict[str, Any] | None = None, name: str = "captk-deepmedic") -> ModelSpec:
    """The :class:`ModelSpec` of CaPTk's DeepMedic brain-tumour model."""
    return ModelSpec(
        name=name,
        family="deepmedic",
        arch=dict(arch or CAPTK_ARCH),
        channels=("t1", "t1ce", "t2", "flair"),
        orientation="LPS",
        output="labels",
        classes=(0, 1, 2, -1, 3),
        label_scheme="brats2021",
        normalization={"kind": "deepmedic"},
        dims=3,
        patch_size=None,
        spacing=(1.0, 1.0, 1.0),
        provenance={
            "source": "CaPTk (CBICA, University of Pennsylvania), "
                      "data/deepMedic/saved_models/brainTumorSegmentation/",
            "model": "dm1Sc3Thin3Seg40_gt4C_HGG587_forCaPTk124 (DeepMedic 0.8.x, TensorFlow checkpoint)",
            "data": "587 high-grade glioma cases (BraTS)",
            "paper": "K. Kamnitsas et al., Efficient multi-scale 3D CNN with fully connected CRF for accurate "
                     "brain lesion segmentation, Medical Image Analysis 36, 2017",
            "licence": _CAPTK_LICENCE,
        },
    )


def build_deepmedic(arch: dict[str, Any]) -> DeepMedic:
    """A :class:`DeepMedic` from constructor arguments (e.g. ``ModelSpec.arch``)."""
    try:
        return DeepMedic(**arch)
    except TypeError as exc:
        raise ModelError(f"bad DeepMedic architecture arguments: {exc}") from exc


def is_captk_deepmedic_folder(folder: str | Path) -> bool:
    """True for a folder holding a DeepMedic TensorFlow checkpoint (``*.index`` and ``*.data-*``)."""
    p = Path(folder)
    return p.is_dir() and any(p.glob("*.index")) and any(p.glob("*.data-*-of-*"))


def load_captk_deepmedic(folder: str | Path, device: str = "cpu") -> LoadedModel:
    """Load CaPTk's DeepMedic model (TensorFlow checkpoint + ``modelConfig.txt``) without TensorFlow.

    Parameters
    ----------
    folder
        The model folder (``model.ckpt.index``, ``model.ckpt.data-00000-of-00001``, optionally
        ``modelConfig.txt``), e.g. CaPTk's ``data/deepMedic/saved_models/brainTumorSegmentation``.
    device
        Torch device for the network.

    Returns
    -------
    LoadedModel
        The network in eval mode (it implements ``predict_volume``) and its :class:`ModelSpec`.

    Raises
    ------
    ModelError
        When the folder holds no readable checkpoint or it does not match the architecture.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ModelError(f"{path}: not a DeepMedic model folder")
    cfg_path = path / "modelConfig.txt"
    arch = arch_from_config(_parse_config(cfg_path)) if cfg_path.is_file() else dict(CAPTK_ARCH)
    net = build_deepmedic(arch)
    load_tf_variables(net, read_checkpoint(path, prefix_filter="net/"))
    net.eval().to(device)
    return LoadedModel(spec=captk_spec(arch), network=net, source=str(path))


def segment_case(case: Any, model: LoadedModel, *, on_progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, precision: str = "fp32") -> np.ndarray:
    """Segment a :class:`~napari_brats_seg.core.case.Case` as CaPTk's DeepMedic does.

    Channels by name, brain mask (any channel non-zero), the model's normalisation, crop to the
    brain's bounding box, the model's voxel order, :meth:`DeepMedic.predict_volume` with the crop's
    place in the whole image (so the tiles fall where the original puts them), argmax over the
    classes it may choose, background outside the brain.

    Parameters
    ----------
    case
        The case.
    model
        A DeepMedic :class:`LoadedModel` (e.g. from :func:`load_captk_deepmedic`).
    on_progress, cancel
        Passed to :meth:`DeepMedic.predict_volume`.
    precision
        ``"fp32"`` or ``"bf16"`` (bfloat16 autocast and channels-last on the CPU).

    Returns
    -------
    numpy.ndarray
        Internal classes (uint8, the case's ``(z, y, x)`` grid).
    """
    from .. import preprocess as pp

    spec, net = model.spec, model.network
    images = case.stack(spec.channels)
    mask = pp.brain_mask(images)
    normed = pp.normalize(images, spec.normalization, mask)
    box = pp.bounding_box(mask)
    in_box = np.zeros(mask.shape, bool)
    in_box[box] = True
    origin = [s.start for s in pp.bounding_box(pp.to_model_axes(in_box, spec.orientation))]
    x = pp.to_model_axes(pp.crop(normed, box), spec.orientation)
    image_shape = pp.to_model_axes(in_box, spec.orientation).shape
    previous = net.precision
    net.precision = precision
    try:
        logits = net.predict_volume(torch.from_numpy(x)[None], on_progress, cancel, origin=origin,
                                    image_shape=image_shape)[0]
    finally:
        net.precision = previous
    choosable = torch.tensor([c >= 0 for c in spec.classes])
    logits[~choosable] = -torch.inf
    channel = logits.argmax(0).numpy()
    lut = np.array([max(c, 0) for c in spec.classes], np.uint8)
    labels = pp.uncrop(pp.from_model_axes(lut[channel], spec.orientation), box, mask.shape, 0)
    labels[~mask] = 0
    return labels
