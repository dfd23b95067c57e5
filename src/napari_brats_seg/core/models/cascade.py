"""Havaei et al. 2017 (Medical Image Analysis 35, 18-31) two-pathway and cascaded 2D CNNs.

:class:`TwoPathCNN` (their Fig. 2) classifies the centre pixel of a ``4 x 33 x 33`` axial patch:

- local path: 7x7 convolution with maxout (64 maps), 4x4 max-pool of stride 1, 3x3 convolution with
  maxout (64 maps), 2x2 max-pool of stride 1 -> ``64 x 21 x 21``;
- global path: 13x13 convolution with maxout (160 maps) -> ``160 x 21 x 21``;
- concatenation (224 maps), then a 21x21 convolution to the classes -> ``K x 1 x 1``.

Every layer is a 'valid' convolution or pooling of stride 1, so the same network applied to a
``4 x (H+32) x (W+32)`` input gives the ``K x H x W`` map of all patch classifications at once.

The cascades (their Fig. 3) feed the softmax output of a first TwoPathCNN into a second one:

- ``input``: into the second's input (first net on a 65x65 patch -> ``5 x 33 x 33``);
- ``local``: into the second's first local hidden layer (56x56 patch -> ``5 x 24 x 24``);
- ``mf`` (mean-field): into the final concatenation (53x53 patch -> ``5 x 21 x 21``).

A hidden unit's place is the input pixel its receptive field is centred on (for the local hidden
layer, whose field is 10 wide, the pixel 4 from its start), and the first net's output there is the
classification of that pixel, computed on the same zero-padded image. The dense ``forward`` pads
the slice with zeros by the context the network needs and runs :meth:`forward_valid`; it equals
classifying, one by one, the zero-padded patch centred on every pixel (tested).

Output classes follow the paper's 5 labels (BraTS 2013: 0 background, 1 necrosis, 2 edema,
3 non-enhancing, 4 enhancing); trained on BraTS 2017+ labels, where 3 is unused, the spec records
``classes = (0, 1, 2, -1, 3)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .spec import ModelSpec

#: Side of the patch each variant classifies: TwoPathCNN 33, cascades as in the paper.
PATCH_SIZE = {"twopath": 33, "input": 65, "local": 56, "mf": 53}
#: (before, after) context of the first net's map joining the second net, per cascade kind.
_JOIN_CONTEXT = {"input": (16, 16), "local": (12, 11), "mf": (10, 10)}


class Maxout2d(nn.Module):
    """A 2D convolution to ``out_maps * pieces`` channels followed by the max over the pieces."""

    def __init__(self, in_channels: int, out_maps: int, kernel: int, pieces: int = 2) -> None:
        super().__init__()
        self.out_maps, self.pieces = out_maps, pieces
        self.conv = nn.Conv2d(in_channels, out_maps * pieces, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        n, _, h, w = y.shape
        return y.view(n, self.out_maps, self.pieces, h, w).amax(dim=2)


class TwoPathCNN(nn.Module):
    """Havaei's TwoPathCNN, 'valid' everywhere: ``(N, C, h+32, w+32)`` -> ``(N, K, h, w)``.

    Parameters
    ----------
    in_channels
        Input channels (4, or 9 as the second net of the input cascade).
    n_classes
        Output classes (5 in the paper).
    local_maps, global_maps
        Maps of the local (64) and global (160) paths.
    pieces
        Maxout pieces.
    local_extra, concat_extra
        Channels joining the first local hidden layer (local cascade) or the concatenation (MF).
    """

    #: Context (pixels) the dense forward adds before and after each axis.
    before = after = 16

    def __init__(self, in_channels: int = 4, n_classes: int = 5, local_maps: int = 64,
                 global_maps: int = 160, pieces: int = 2, local_extra: int = 0, concat_extra: int = 0) -> None:
        super().__init__()
        self.local1 = Maxout2d(in_channels, local_maps, 7, pieces)
        self.local2 = Maxout2d(local_maps + local_extra, local_maps, 3, pieces)
        self.glob = Maxout2d(in_channels, global_maps, 13, pieces)
        self.final = nn.Conv2d(local_maps + global_maps + concat_extra, n_classes, 21)

    def forward_valid(self, x: torch.Tensor, local_join: torch.Tensor | None = None,
                      concat_join: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the centre pixel of every 33x33 window of ``x`` (plus optional joined maps)."""
        h = F.max_pool2d(self.local1(x), 4, stride=1)
        if local_join is not None:
            h = torch.cat([h, local_join], dim=1)
        h = F.max_pool2d(self.local2(h), 2, stride=1)
        feats = [h, self.glob(x)]
        if concat_join is not None:
            feats.append(concat_join)
        return self.final(torch.cat(feats, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense logits of a whole slice: ``(N, C, H, W)`` -> ``(N, K, H, W)``."""
        b, a = self.before, self.after
        return self.forward_valid(F.pad(x, (b, a, b, a)))


class CascadeCNN(nn.Module):
    """InputCascadeCNN, LocalCascadeCNN or MFCascadeCNN (``kind`` ``input``, ``local``, ``mf``).

    :meth:`forward_valid` takes a patch of side ``PATCH_SIZE[kind] + h - 1`` and returns the
    ``h x h`` logits of its centre pixels; :meth:`forward` labels a whole slice.
    """

    def __init__(self, kind: str = "input", in_channels: int = 4, n_classes: int = 5, local_maps: int = 64,
                 global_maps: int = 160, pieces: int = 2) -> None:
        super().__init__()
        if kind not in _JOIN_CONTEXT:
            raise ModelError(f"cascade kind must be one of {', '.join(_JOIN_CONTEXT)}, not {kind!r}")
        self.kind = kind
        widths = {"n_classes": n_classes, "local_maps": local_maps, "global_maps": global_maps, "pieces": pieces}
        self.first = TwoPathCNN(in_channels, **widths)
        self.second = TwoPathCNN(
            in_channels + (n_classes if kind == "input" else 0),
            local_extra=n_classes if kind == "local" else 0,
            concat_extra=n_classes if kind == "mf" else 0, **widths,
        )
        before, after = _JOIN_CONTEXT[kind]
        self.before, self.after = 16 + before, 16 + after  # total input context

    def forward_valid(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the centre pixels of ``x`` (``self.before`` / ``self.after`` context used)."""
        join = torch.softmax(self.first.forward_valid(x), dim=1)
        b, a = self.before - 16, self.after - 16
        inner = x[..., b: x.shape[-2] - a, b: x.shape[-1] - a]  # the second net's 33-context input
        if self.kind == "input":
            return self.second.forward_valid(torch.cat([inner, join], dim=1))
        if self.kind == "local":
            return self.second.forward_valid(inner, local_join=join)
        return self.second.forward_valid(inner, concat_join=join)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense logits of a whole slice: ``(N, C, H, W)`` -> ``(N, K, H, W)``."""
        b, a = self.before, self.after
        return self.forward_valid(F.pad(x, (b, a, b, a)))


def cascade_spec(name: str = "cascade", *, kind: str = "input", local_maps: int = 64, global_maps: int = 160,
                 pieces: int = 2, n_classes: int = 5, patch_size: tuple[int, int] = (240, 240)) -> ModelSpec:
    """A :class:`ModelSpec` of a Havaei network (``kind`` ``twopath``, ``input``, ``local`` or ``mf``)."""
    if n_classes == 5:
        classes: tuple[int, ...] = (0, 1, 2, -1, 3)
    elif n_classes == 4:
        classes = (0, 1, 2, 3)
    else:
        raise ModelError(f"a cascade network has 4 or 5 classes, not {n_classes}")
    arch: dict[str, Any] = {"kind": kind, "in_channels": 4, "n_classes": n_classes, "local_maps": local_maps,
                            "global_maps": global_maps, "pieces": pieces}
    return ModelSpec(name=name, family="cascade", arch=arch, output="labels", classes=classes, dims=2,
                     patch_size=tuple(patch_size), label_scheme="brats2021",
                     provenance={"architecture": "Havaei et al. 2017, Medical Image Analysis 35:18-31"})


def build_cascade(spec: ModelSpec) -> nn.Module:
    """TwoPathCNN or a CascadeCNN from ``spec.arch`` (``kind`` selects which)."""
    arch = dict(spec.arch)
    kind = arch.pop("kind", "twopath")
    try:
        if kind == "twopath":
            return TwoPathCNN(**arch)
        return CascadeCNN(kind, **arch)
    except TypeError as exc:
        raise ModelError(f"cannot build cascade {spec.name!r}: {exc}") from exc
