"""The adversarial term of a training run (``--adversarial``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.spec import ModelSpec


class Adversary:
    """The adversarial (DCGAN-style) term of engineer "models"' :mod:`~.models.adversarial`: a
    discriminator tells expert from predicted maps (given the images); the segmenter gets
    ``weight * g_loss``."""

    def __init__(self, spec: ModelSpec, weight: float, device: torch.device, lr: float = 2e-4) -> None:
        from ..models.adversarial import Discriminator

        self.n_out = len(spec.regions) if spec.output == "regions" else len(spec.classes)
        self.disc = Discriminator(len(spec.channels) + self.n_out, spatial_dims=spec.dims).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))
        self.weight, self.output = weight, spec.output
        self._d_loss: torch.Tensor | None = None

    def generator_term(self, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``weight * g_loss`` (and keeps ``d_loss`` for :meth:`step`)."""
        from ..models.adversarial import adversarial_losses

        if self.output == "regions":
            probs, truth = torch.sigmoid(logits), y.float()
        else:
            probs = torch.softmax(logits, 1)
            truth = F.one_hot(y[:, 0].long(), self.n_out).movedim(-1, 1).float()
        g_loss, self._d_loss = adversarial_losses(self.disc, x, probs, truth)
        return self.weight * g_loss

    def step(self) -> float:
        """One discriminator update with the last ``d_loss``; returns it."""
        assert self._d_loss is not None
        self.opt.zero_grad(set_to_none=True)
        self._d_loss.backward()
        self.opt.step()
        out, self._d_loss = float(self._d_loss), None
        return out
