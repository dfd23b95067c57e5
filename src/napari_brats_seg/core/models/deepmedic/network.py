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
the image is padded by half the receptive field (9 voxels for CaPTk's model, whose receptive field is
19 with the first FC layer's 3x3x3 kernel), segments of 45^3 inputs are taken at strides of 27 (the
voxels one segment predicts), the last one along an axis shifted back to end at the
border, segments with no brain voxel are skipped, and later segments overwrite earlier ones where they
overlap. The subsampled pathways' inputs are cut out of the image around each segment exactly as
DeepMedic's ``get_subsampl_segment`` does (including its handling of the low image border), filled
with the image's border intensity outside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ...progress import CancelToken, ProgressCallback
from .fast import conv3d, residual, run_tiles
from .tiling import corner_background, plan_tiles

_log = logging.getLogger("napari_brats_seg.runtimes")

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


def receptive_field(n_layers: int, fc_kernel: int = 3, fc_padding: str = "valid") -> int:
    """Receptive field (voxels per axis) of a DeepMedic with ``n_layers`` 3x3x3 valid convolutions per
    pathway and a first FC layer of ``fc_kernel`` (valid, or mirror-padded to keep the size)."""
    return 1 + 2 * int(n_layers) + (int(fc_kernel) - 1 if fc_padding == "valid" else 0)


def input_padding(arch: dict[str, Any]) -> int:
    """Voxels DeepMedic adds to each side of the image before tiling *and before normalising*: half
    the receptive field of the network that ``arch`` (constructor arguments) describes."""
    rf = receptive_field(len(arch.get("fms_normal", CAPTK_ARCH["fms_normal"])),
                         arch.get("fc_kernel", CAPTK_ARCH["fc_kernel"]),
                         arch.get("fc_padding", CAPTK_ARCH["fc_padding"]))
    return (rf - 1) // 2


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

    def activate(self, x: torch.Tensor, chans: slice = slice(None)) -> torch.Tensor:
        """The block's batch norm (or bias) and PReLU, on its input channels ``chans``."""
        shape = (1, -1, 1, 1, 1)
        x = x * self.scale[chans].view(shape).to(x.dtype) + self.shift[chans].view(shape).to(x.dtype)
        if self.prelu is not None:
            x = F.prelu(x, self.prelu[chans].to(x.dtype))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activate(x)
        if self.pad:
            # DeepMedic's pad_by_mirroring: for one voxel per side this repeats the border voxel.
            x = F.pad(x, (self.pad,) * 6, mode="replicate")
        w = self.weight if self.keep == 1.0 else self.weight * self.keep
        return conv3d(x, w)


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
                out = residual(inp_prev, out)
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
        self.rec_field_net = receptive_field(n_layers, fc_kernel, fc_padding)
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
        #: ``"fp32"`` or ``"bf16"`` (bfloat16 autocast, channels-last convolutions, in :meth:`predict_volume`).
        self.precision = "fp32"
        #: ``"torch"`` or ``"openvino"``: what runs :meth:`predict_volume`'s steps (:meth:`use_runtime`).
        self.runtime = "torch"
        self.eval()

    def use_runtime(self, runtime: str, device: torch.device | str = "cpu", precision: str = "fp32") -> str:
        """Run :meth:`predict_volume` on ``runtime`` (``"auto"``, ``"torch"``, ``"openvino"``) from now on.

        The export and compilation happen here (once per process and weights; exports are cached on
        disk), so that they are not counted as the first tile's work. Returns what runs it, e.g.
        ``"openvino 2026.4.1 fp32"`` or ``"torch 2.13.0 fp32"``.

        Raises
        ------
        napari_brats_seg.core.runtimes.RuntimeNotInstalled, ModelError
            As :func:`.runtime.choose_runtime`; an export that fails when OpenVINO is asked for by name
            (with ``"auto"`` it falls back to torch with a logged warning).
        """
        from ...errors import InferenceError
        from .runtime import choose_runtime, parts_for

        name = choose_runtime(runtime, device)
        bf16 = precision == "bf16"
        try:
            _, label = parts_for(self, name, bf16=bf16, device=torch.device(device))
        except InferenceError as exc:
            if str(runtime).lower() != "auto":
                raise
            _log.warning("DeepMedic: %s; running it on torch", exc)
            name, label = "torch", ""
        self.runtime = name if label else "torch"
        return label or f"torch {torch.__version__.split('+')[0]} {'bf16' if bf16 else 'fp32'}"

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
                       image_shape: Sequence[int] | None = None, batch_size: int = 4,
                       slab: int = 20, block: int = 9) -> torch.Tensor:
        """Segment a whole normalised volume tile by tile, as DeepMedic's testing routine does.

        Same logits as DeepMedic's tile-by-tile computation, with less work (:mod:`.fast`):
        the normal pathway, which does not depend on the tile, is computed once, densely; the first FC
        layer's part on it is read from those dense maps per tile (or brain block); the subsampled
        pathways and the first FC layer's part on them, which depend on the tile (their grid is
        anchored to it), run per tile at their low resolution; then the 1x1x1 FC layers.

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
            The dense normal pathway runs in slabs of ``slab`` voxels along the first axis (in each, only
            the range of the other two that the FC layers need). Thin slabs stay in the CPU's caches:
            20 ran the pathway 1.6x faster than 40 on the development machine.
        block
            Only output blocks of ``block^3`` voxels that hold brain are written; the FC layers run on
            a tile's whole output, or on its brain blocks one by one where that is less work (outside the
            brain the labels are background anyway). See :mod:`.fast`.

        Returns
        -------
        torch.Tensor
            ``(1, n_classes, a0, a1, a2)`` float32 logits; voxels of blocks without brain are 0.

        Notes
        -----
        Runs in bfloat16 (channels-last convolutions) when :attr:`precision` is ``"bf16"`` or a CPU
        bf16 autocast is active around the call; otherwise float32. On the CPU its three steps run on
        :attr:`runtime` (:meth:`use_runtime`; OpenVINO with the same precision hint, :mod:`.runtime`).
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
        parts = None
        if self.runtime != "torch" and device.type == "cpu":
            from .runtime import parts_for

            parts, _ = parts_for(self, self.runtime, bf16=bf16, device=device)
        out = run_tiles(self, plan, bf16=bf16 and parts is None, device=device, on_progress=on_progress,
                        cancel=cancel, batch_size=batch_size, slab=slab, block=block, parts=parts)
        pad_lo = plan["pad_lo"]
        crop = tuple(slice(a + r.start, a + r.stop) for a, r in zip(pad_lo, region))
        return out[(slice(None),) + crop].unsqueeze(0).to(x.device)

    def _repeat(self, size: int, lr_outs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Subsampled pathways' outputs repeated back to full resolution, cut to ``size``, concatenated."""
        outs = []
        for f, lr in zip(self.factors, lr_outs):
            for d in range(3):
                lr = lr.repeat_interleave(f, dim=2 + d)
            outs.append(lr[:, :, :size, :size, :size])
        return torch.cat(outs, dim=1)

    def _upsampled(self, size: int, x_lr: Sequence[torch.Tensor]) -> torch.Tensor:
        """Subsampled pathways, repeated back to full resolution and cut to ``size``, concatenated."""
        return self._repeat(size, [path(xs) for path, xs in zip(self.subsampled, x_lr)])

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


def build_deepmedic(arch: dict[str, Any]) -> DeepMedic:
    """A :class:`DeepMedic` from constructor arguments (e.g. ``ModelSpec.arch``)."""
    try:
        return DeepMedic(**arch)
    except TypeError as exc:
        raise ModelError(f"bad DeepMedic architecture arguments: {exc}") from exc



def build_from_spec(spec: Any) -> DeepMedic:
    """The :class:`DeepMedic` of a ``ModelSpec`` (its ``arch`` holds the constructor arguments)."""
    return build_deepmedic(spec.arch)
