"""The GAN objective, kept out of the loop: D and G losses, InfoGAN's code loss, R1.

Training tier (torch). As in StyleGAN3's training/loss.py, every image the
discriminator sees goes through `run_D`, the one place augmentation is applied
(dcgan_rt.train.augment): real and generated images alike, and the real images of
the R1 penalty, whose gradient is taken with respect to the images before
augmentation.

Before any of that, D may see every image through a mu-law compander of its
intensity (`d_mu_law`, `mu_law` below): black stays black and white white, while
faint ink is brightened (mu 16: a pixel at 0.09 of white looks like 0.31), so D notices
the faint specks a generator leaves in a black background (docs/training.md,
"Speckle"). It is part of what D looks at, data and generated images alike; R1 is
taken with respect to what D sees.

The losses: non-saturating binary cross-entropy on D's logits (Goodfellow et al.),
one-sided label smoothing for real images; InfoGAN's cross-entropy of D's code
logits against the code G was given, minimised by both (Chen et al. 2016); R1,
gamma/2 E|grad_x D(x)|^2 at real images, lazily every r1_every steps (Mescheder et
al. 2018; Karras et al. 2020). A conditional model's D reads the label: a projection D
(Miyato & Koyama 2018) needs no term of its own; an auxiliary-classifier D (AC-GAN,
Odena et al. 2017) adds the cross-entropy of its label logits against the label, real
and generated images for D, generated for G (binary for attributes). Under fp16 autocast the R1 gradient is taken of the
scaled output and unscaled, as PyTorch's AMP notes ("gradient penalty") say.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_rt.train.augment import AugmentPipe
from dcgan_rt.train.options import TrainOptions


def mu_law(images: torch.Tensor, mu: float) -> torch.Tensor:
    """images in [-1, 1] -> [-1, 1] with intensity u = (x + 1) / 2 companded to
    log(1 + mu u) / log(1 + mu) (G.711's mu-law applied to brightness)."""
    u = ((images + 1) / 2).clamp_min(0)
    return 2 * torch.log1p(mu * u) / math.log1p(mu) - 1


class DCGANLoss:
    """Losses of one training step. `d_train` is the discriminator as trained (its DDP
    wrapper under torchrun), `d_plain` the bare network, used for G's step, where D's
    weight gradients are not wanted and there is nothing to average over ranks."""

    def __init__(self, d_train: nn.Module, d_plain: nn.Module, opts: TrainOptions,
                 augment: AugmentPipe | None = None, scaler: torch.amp.GradScaler | None = None,
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext):
        self.d_train, self.d_plain = d_train, d_plain
        self.opts = opts
        self.augment = augment
        self.scaler = scaler
        self.autocast = autocast
        self.real_label = 1.0 - opts.label_smoothing

    def d_view(self, images: torch.Tensor) -> torch.Tensor:
        """The images as D sees them: through the mu-law compander when d_mu_law > 0."""
        return mu_law(images, self.opts.d_mu_law) if self.opts.d_mu_law > 0 else images

    def run_D(self, images: torch.Tensor, d: nn.Module, label: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, C, H, W) [, label] -> D's logits (B, 1 + code_dim [+ label logits]) in float32."""
        if self.augment is not None:
            images = self.augment(images)
            if self.opts.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        if label is None:
            return d(images).float()
        return d(images, label).float()

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor, code: torch.Tensor | None,
                           r1: bool, label: torch.Tensor | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's loss on a real and a generated batch (plus R1 when due); `label`: the real
        batch's labels, which the generated batch was made with too. Returns
        (loss_d, real logits (B,), fake logits (B,), loss_code)."""
        real, fake = self.d_view(real), self.d_view(fake.detach())
        if r1:
            real = real.detach().requires_grad_(True)
        with self.autocast():
            out_real = self.run_D(real, self.d_train, label)
            d_real = out_real[:, 0]
            out_fake = self.run_D(fake, self.d_train, label)
            d_fake = out_fake[:, 0]
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, self.real_label))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            loss_code = self.code_loss(out_fake, code)
            loss_d = loss_d + self.opts.info_lambda * loss_code
            loss_d = loss_d + self.label_loss(out_real, label) + self.label_loss(out_fake, label)
        if r1:
            loss_d = loss_d + self.r1_penalty(real, d_real)
        if self.augment is not None:
            self.augment.accumulate(d_real)
        return loss_d, d_real, d_fake, loss_code

    def generator_loss(self, fake: torch.Tensor, code: torch.Tensor | None,
                       label: torch.Tensor | None = None) -> torch.Tensor:
        """G's non-saturating loss (and its share of the code and label losses), through the bare D."""
        fake = self.d_view(fake)
        with self.autocast():
            out_gen = self.run_D(fake, self.d_plain, label)
            d_gen = out_gen[:, 0]
            return (F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
                    + self.opts.info_lambda * self.code_loss(out_gen, code) + self.label_loss(out_gen, label))

    def code_loss(self, d_out: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """InfoGAN's loss: cross-entropy of D's code logits against the code G was given
        (a lower bound on their mutual information, up to a constant). Both D and G minimise
        it, so G's codes become different kinds of image: on digits, mostly one class each."""
        if code is None:
            return d_out.new_zeros(())
        return F.cross_entropy(d_out[:, 1:1 + self.opts.code_dim], code)

    def label_loss(self, d_out: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """AC-GAN's auxiliary classifier loss on D's label logits (zero for a projection D,
        which has none): cross-entropy for a class, binary cross-entropy per attribute."""
        first = 1 + self.opts.code_dim
        if label is None or d_out.shape[1] == first:
            return d_out.new_zeros(())
        logits = d_out[:, first:]
        if label.dtype == torch.int64:
            return F.cross_entropy(logits, label)
        return F.binary_cross_entropy_with_logits(logits, label.float())

    def r1_penalty(self, real: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
        """gamma/2 * E|grad_x D(x)|^2 at real images, times r1_every (the lazy schedule applies
        it once every r1_every steps). Keeping D flat around the real images stops it from
        memorising a small data set, the usual way a DCGAN's D wins and its G then degrades."""
        scaled = self.scaler is not None and self.scaler.is_enabled()
        out = d_real.sum()
        if scaled:  # fp16: the unscaled gradient could underflow; take it of the scaled output
            out = self.scaler.scale(out)
        (grad,) = torch.autograd.grad(out, real, create_graph=True)
        grad = grad.float()
        if scaled:
            grad = grad / self.scaler.get_scale()
        return grad.square().sum(dim=(1, 2, 3)).mean() * (self.opts.r1_gamma / 2 * self.opts.r1_every)
