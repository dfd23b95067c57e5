"""Adversarial training of segmenters: a DCGAN-style discriminator on (image, label map) pairs.

Following Luc et al. 2016 ("Semantic segmentation using adversarial networks") with a DCGAN
discriminator (Radford et al. 2016: strided 4x4 convolutions, batch norm except on the first layer,
leaky ReLU 0.2), a :class:`Discriminator` judges whether a label map, given as per-class
probabilities stacked with the MRI channels, is an expert's (real) or a segmenter's (fake). The
segmenter is trained with its usual loss plus ``weight * g_loss``; the discriminator with
``d_loss``. Works for 2D slices and 3D patches and for ``labels`` (softmax) or ``regions`` (sigmoid)
outputs alike, since it only sees probability maps.

Use in a training step::

    probs = torch.softmax(seg(images), 1)            # or torch.sigmoid for region outputs
    g_loss, d_loss = adversarial_losses(disc, images, probs, onehot)
    opt_seg.zero_grad(); (seg_loss + 0.1 * g_loss).backward(); opt_seg.step()
    opt_disc.zero_grad(); d_loss.backward(); opt_disc.step()

``d_loss`` sees the prediction detached, so it never trains the segmenter; clear the
discriminator's gradients (``opt_disc.zero_grad()``) before ``d_loss.backward()`` because
``g_loss.backward()`` also reaches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Discriminator(nn.Module):
    """DCGAN-style discriminator of ``(image, label probabilities)`` pairs.

    Parameters
    ----------
    in_channels
        Image channels plus label channels (e.g. 4 + 4 for four sequences and four classes).
    spatial_dims
        2 (slices) or 3 (patches).
    features
        Channels of the strided convolution blocks; each halves the spatial size.

    Notes
    -----
    The output is one logit per sample: the mean of a patch-wise logit map, so any input size at
    least ``2 ** len(features)`` works.
    """

    def __init__(self, in_channels: int, spatial_dims: int = 2, features: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        layers: list[nn.Module] = []
        prev = in_channels
        for i, f in enumerate(features):
            layers.append(conv(prev, f, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                layers.append(norm(f))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = f
        layers.append(conv(prev, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.spatial_dims = spatial_dims

    def forward(self, images: torch.Tensor, label_probs: torch.Tensor) -> torch.Tensor:
        """Logit (``N``) that each (image, label map) pair is an expert's."""
        x = torch.cat([images, label_probs.to(images.dtype)], dim=1)
        return self.body(x).flatten(1).mean(dim=1)


def adversarial_losses(disc: Discriminator, images: torch.Tensor, pred_probs: torch.Tensor,
                       true_onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The segmenter's and the discriminator's adversarial losses (binary cross-entropy).

    Parameters
    ----------
    disc
        The discriminator.
    images
        ``(N, C, *S)`` network inputs.
    pred_probs
        ``(N, K, *S)`` segmenter probabilities (softmax or sigmoid), with gradients.
    true_onehot
        ``(N, K, *S)`` expert labels in the same encoding (one-hot classes or region masks).

    Returns
    -------
    g_loss
        ``BCE(D(image, pred), real)``: small when the discriminator takes predictions for expert
        maps; add ``weight * g_loss`` to the segmentation loss.
    d_loss
        ``(BCE(D(image, true), real) + BCE(D(image, pred.detach()), fake)) / 2``.
    """
    if pred_probs.shape != true_onehot.shape:
        raise ValueError(f"prediction {tuple(pred_probs.shape)} and truth {tuple(true_onehot.shape)} differ")
    fake_for_g = disc(images, pred_probs)
    g_loss = F.binary_cross_entropy_with_logits(fake_for_g, torch.ones_like(fake_for_g))
    real = disc(images, true_onehot.to(images.dtype))
    fake = disc(images, pred_probs.detach())
    d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                    + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    return g_loss, d_loss
