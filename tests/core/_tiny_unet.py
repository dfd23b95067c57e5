"""A seeded tiny 3D U-Net (DynUNet from the registry) for the core tests (test_inference, test_runtimes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.spec import LoadedModel
from napari_brats_seg.core.models.unet3d import unet3d_spec


def tiny_unet3d(output: str = "labels", patch: tuple[int, int, int] | None = None, seed: int = 0,
                filters: Sequence[int] = (4, 4, 4)) -> LoadedModel:
    """A seeded 3-level DynUNet (instance norm, ``filters`` per level); no patch size (whole-volume
    passes) unless ``patch`` is given."""
    spec = unet3d_spec("tiny", output=output, filters=list(filters), kernel_size=[[3, 3, 3]] * 3,
                       strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], upsample_kernel_size=[[2, 2, 2]] * 2,
                       deep_supervision=False, res_block=False, patch_size=patch or (128, 128, 128))
    if patch is None:
        spec.patch_size = None
    torch.manual_seed(seed)
    return LoadedModel(spec, build_network(spec).eval())


def speckled_unet3d(seed: int = 0) -> LoadedModel:
    """:func:`tiny_unet3d` with region outputs whose biases are lowered by 1: on a synthetic case most
    voxels are background and the tumour it predicts is one large component among many small ones
    (what connected-component post-processing acts on)."""
    model = tiny_unet3d("regions", seed=seed)
    with torch.no_grad():
        model.network.net.output_block.conv.conv.bias.add_(-1.0)
    return model
