"""Differentiable augmentation of every image the discriminator sees (DiffAugment, ADA).

Training tier (torch). With a few hundred photos the discriminator memorises them and
the generator's gradients turn to noise. The field's answer is to augment every image
D sees, real and generated alike, with operations that gradients pass through, so G
still learns from D through them and never learns to draw them (Zhao et al. 2020,
DiffAugment; Karras et al. 2020, ADA). The loss applies `AugmentPipe` in its
`run_D`, the one place images reach D.

The operations are DiffAugment's colour (brightness, saturation, contrast),
translation by up to 1/8 of the image (zero fill) and cutout of a half-size square,
plus ADA's x-flip. Each is a pixel gather or arithmetic, so the R1 penalty's double
backward goes through them; ADA's rotations and scalings would go through
grid_sample, which has no double backward (pytorch issue 34704) and needs
StyleGAN2-ADA's gradfix: they are left out (measured in docs/training.md).

Policies (`--augment`):
- ``diffaug``: every operation on every image (p = 1), DiffAugment's recipe.
- ``ada``: each operation on each image with probability p, adjusted by D's
  overfitting signal r_t = E[sign(D(real))] towards a target (0.6), ADA's heuristic.
- ``off``.

Randomness comes from the pipe's own torch.Generator, checkpointed with p, so a
resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("off", "diffaug", "ada")
ADA_TARGET = 0.6  # r_t above this: D is too sure about the real images; raise p
ADA_INTERVAL = 4  # steps between updates of p


class AugmentPipe:
    """images (N, C, H, W) in [-1, 1] -> augmented images, same shape; differentiable twice."""

    def __init__(self, policy: str, device: torch.device, seed: int, ada_kimg: float = 100.0):
        if policy not in POLICIES or policy == "off":
            raise ValueError(f"no augmentation pipe for policy {policy!r}")
        self.policy = policy
        self.device = device
        self.ada_kimg = ada_kimg
        self.p = torch.ones((), device=device) if policy == "diffaug" else torch.zeros((), device=device)
        self.rng = torch.Generator(device=device).manual_seed(seed)
        # ADA's statistics of sign(D(real)), kept on the device: no host sync per step.
        self._sign_sum = torch.zeros((), device=device)
        self._sign_count = 0

    # -- the operations ------------------------------------------------------------------

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, device=self.device, generator=self.rng)

    def _apply(self, n: int) -> torch.Tensor:
        """(n, 1, 1, 1) float mask: 1 where this operation applies to the image."""
        return (self._rand(n, 1, 1, 1) < self.p).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        x = x + (self._rand(n, 1, 1, 1) - 0.5) * self._apply(n)  # brightness +-0.5
        if c == 3:
            mean = x.mean(dim=1, keepdim=True)
            factor = 1 + (self._rand(n, 1, 1, 1) * 2 - 1) * self._apply(n)  # saturation x [0, 2]
            x = (x - mean) * factor + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        factor = 1 + (self._rand(n, 1, 1, 1) - 0.5) * self._apply(n)  # contrast x [0.5, 1.5]
        x = (x - mean) * factor + mean
        x = self._xflip(x)
        x = self._translate(x)
        x = self._cutout(x)
        return x

    def _xflip(self, x: torch.Tensor) -> torch.Tensor:
        flip = (self._apply(x.shape[0]) * (self._rand(x.shape[0], 1, 1, 1) < 0.5).float()).bool()
        return torch.where(flip, x.flip(3), x)

    def _translate(self, x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
        """Shift each image by up to ratio of its size, zero fill (a gather: twice differentiable)."""
        n, _, h, w = x.shape
        sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
        on = self._apply(n).reshape(n, 1, 1)
        ty = (torch.floor(self._rand(n, 1, 1) * (2 * sy + 1)) - sy) * on
        tx = (torch.floor(self._rand(n, 1, 1) * (2 * sx + 1)) - sx) * on
        gy = torch.arange(h, device=x.device).reshape(1, h, 1) + ty.long() + 1
        gx = torch.arange(w, device=x.device).reshape(1, 1, w) + tx.long() + 1
        gy, gx = gy.clamp(0, h + 1).expand(n, h, w), gx.clamp(0, w + 1).expand(n, h, w)
        padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (N, H+2, W+2, C): the border is the fill
        batch = torch.arange(n, device=x.device).reshape(n, 1, 1).expand(n, h, w)
        return padded[batch, gy, gx].permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
        """Zero a square of ratio x the image size at a random place (partly outside is fine)."""
        n, _, h, w = x.shape
        ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
        cy = torch.floor(self._rand(n, 1, 1) * (h + 1 - ch % 2)).long()
        cx = torch.floor(self._rand(n, 1, 1) * (w + 1 - cw % 2)).long()
        ys = torch.arange(h, device=x.device).reshape(1, h, 1)
        xs = torch.arange(w, device=x.device).reshape(1, 1, w)
        dy, dx = ys - cy + ch // 2, xs - cx + cw // 2  # position inside the square
        inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)  # (N, H, W)
        on = self._apply(n).reshape(n, 1, 1).bool()
        keep = (~(inside & on)).to(x.dtype).unsqueeze(1)  # (N, 1, H, W)
        return x * keep

    # -- ADA: p follows D's overfitting signal ------------------------------------------

    def accumulate(self, d_real_logits: torch.Tensor) -> None:
        """Add one step's real logits to r_t's statistics (ADA only)."""
        if self.policy == "ada":
            self._sign_sum += torch.sign(d_real_logits.detach()).sum()
            self._sign_count += d_real_logits.shape[0]

    def update(self, images_per_step: int, mean_over_ranks=None) -> None:
        """Every ADA_INTERVAL steps: p += sign(r_t - target) * images / (ada_kimg * 1000), clamped
        to [0, 1], so p can go from 0 to 1 in ada_kimg thousand images. Runs on the device."""
        if self.policy != "ada" or self._sign_count == 0:
            return
        stats = torch.stack([self._sign_sum, torch.tensor(float(self._sign_count), device=self.device)])
        if mean_over_ranks is not None:
            stats = mean_over_ranks(stats)
        r_t = stats[0] / stats[1]
        step = images_per_step * ADA_INTERVAL / (self.ada_kimg * 1000)
        self.p = (self.p + torch.sign(r_t - ADA_TARGET) * step).clamp(0.0, 1.0)
        self._sign_sum.zero_()
        self._sign_count = 0

    # -- exact resume ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"policy": self.policy, "p": self.p.detach().cpu(), "rng": self.rng.get_state(),
                "sign_sum": self._sign_sum.detach().cpu(), "sign_count": self._sign_count}

    def load_state_dict(self, state: dict) -> None:
        self.p = state["p"].to(self.device)
        self.rng.set_state(state["rng"])
        self._sign_sum = state["sign_sum"].to(self.device)
        self._sign_count = int(state["sign_count"])
