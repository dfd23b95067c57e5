"""Tumour contours and slice classification on real labels; the adversarial loss term."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.draw import polygon2mask

from napari_brats_seg.core.case import Case
from napari_brats_seg.core.labels import region_masks
from napari_brats_seg.core.models.adversarial import Discriminator, adversarial_losses
from napari_brats_seg.core.models.families import build_network
from napari_brats_seg.core.models.localize import SliceClassifier, contours_as_shapes, slice_contours, slice_presence
from napari_brats_seg.core.models.unet2d import unet2d_spec


def test_contours_outline_the_real_tumour_on_every_slice(crop_case: Case) -> None:
    gt = crop_case.ground_truth
    wt = region_masks(gt)["WT"]
    contours = slice_contours(gt, "WT")
    assert sorted(contours) == [int(z) for z in np.flatnonzero(wt.any(axis=(1, 2)))]
    for z in list(contours)[:: max(len(contours) // 6, 1)]:
        polys = contours[z]
        assert all(np.array_equal(p[0], p[-1]) for p in polys)  # closed
        # rasterising the outlines (even-odd, so holes stay holes) gives back the slice's mask
        raster = np.zeros(wt.shape[1:], bool)
        for p in polys:
            raster ^= polygon2mask(wt.shape[1:], p)
        assert np.array_equal(raster, wt[z]), z


def test_contours_in_mm_and_as_shapes(crop_case: Case) -> None:
    gt = crop_case.ground_truth
    vox = slice_contours(gt, "TC")
    mm = slice_contours(gt, "TC", spacing=(3.0, 2.0, 0.5))
    z = next(iter(vox))
    np.testing.assert_allclose(mm[z][0], vox[z][0] * [2.0, 0.5])
    shapes = contours_as_shapes(vox)
    assert len(shapes) == sum(len(p) for p in vox.values())
    assert shapes[0].shape[1] == 3 and np.all(shapes[0][:, 0] == z)


def test_slice_presence_matches_ground_truth(crop_case: Case) -> None:
    gt = crop_case.ground_truth
    present = slice_presence(gt, "ET")
    assert present.shape == (gt.shape[0],)
    assert np.array_equal(present, (gt == 3).any(axis=(1, 2)))
    assert slice_presence(gt, "WT", min_voxels=10**6).sum() == 0
    assert slice_presence(np.zeros((4, 5, 5), np.uint8)).tolist() == [False] * 4


def test_slice_classifier_head_gives_one_logit_per_slice(slices2d: torch.Tensor) -> None:
    out = SliceClassifier(features=(4, 8))(slices2d[..., :30, :27])
    assert out.shape == (2,)


def test_adversarial_losses_train_the_right_networks(slices2d: torch.Tensor, crop_case: Case) -> None:
    torch.manual_seed(0)
    seg = build_network(unet2d_spec("unet2d", arch={"features": [4, 4, 8, 8, 16, 4]}))
    disc = Discriminator(4 + 4, spatial_dims=2, features=(8, 16, 32))
    images = slices2d
    gt = torch.from_numpy(crop_case.ground_truth[16:48, 16:48, 16:48].astype(np.int64))
    labels = gt.permute(2, 1, 0)[[10, 20]]  # the same two axial slices in model axes (x, y)
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    probs = torch.softmax(seg(images), dim=1)
    g_loss, d_loss = adversarial_losses(disc, images, probs, onehot)
    assert g_loss.ndim == 0 and d_loss.ndim == 0 and torch.isfinite(g_loss) and torch.isfinite(d_loss)
    d_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in seg.parameters())  # the discriminator's loss never trains the segmenter
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    g_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in seg.parameters())
    with pytest.raises(ValueError, match="differ"):
        adversarial_losses(disc, images, probs, onehot[:, :3])


def test_discriminator_3d_and_a_few_steps_separate_real_from_fake() -> None:
    torch.manual_seed(0)
    disc = Discriminator(2 + 3, spatial_dims=3, features=(8, 16))
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    images = torch.randn(4, 2, 16, 16, 16)
    real = (images[:, :1] > 0).float().repeat(1, 3, 1, 1, 1)  # labels that follow the image
    fake = torch.rand(4, 3, 16, 16, 16)  # labels that do not
    first = None
    for _ in range(15):
        _, d_loss = adversarial_losses(disc, images, fake, real)
        first = d_loss.item() if first is None else first
        opt.zero_grad()
        d_loss.backward()
        opt.step()
    assert d_loss.item() < 0.5 * first
