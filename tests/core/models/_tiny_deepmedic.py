"""A seeded tiny DeepMedic for the DeepMedic tests (test_deepmedic, test_deepmedic_fast)."""

from __future__ import annotations

import numpy as np
import torch

from napari_brats_seg.core.models import deepmedic as dm

#: Two subsampled pathways, residual blocks and a 3^3 first FC layer, a few thousand weights.
TINY = {
    "in_channels": 4, "n_classes": 5, "fms_normal": [3, 4, 4, 5, 5, 6, 6, 7],
    "fms_subsampled": [3, 4, 4, 5, 5, 6, 6, 7], "subsample_factors": [3, 5], "residual_layers": [4, 6, 8],
    "fms_fc": [8, 9], "fc_kernel": 3, "residual_layers_fc": [2], "dropout_fc": [0.0, 0.3, 0.3],
    "fc_padding": "valid", "segment_size": 45,
}


def tiny_deepmedic(seed: int = 0, **arch: object) -> dm.DeepMedic:
    """:data:`TINY` (with ``arch`` overrides), seeded, its batch norms far from the identity (so folding
    and normalising matter)."""
    net = dm.build_deepmedic({**TINY, **arch})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith("scale"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("weight"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    return net


def volume(shape: tuple[int, int, int] = (40, 38, 36), seed: int = 0) -> np.ndarray:
    """A normalised-looking volume: an ellipsoid 'brain' of noise in a constant background."""
    rng = np.random.default_rng(seed)
    x = np.full((4,) + shape, -1.5, np.float32)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.8
    x[:, inside] = rng.normal(size=(4, int(inside.sum()))).astype(np.float32)
    return x
