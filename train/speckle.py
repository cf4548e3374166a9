"""Speckle: stray ink in the background of images of strokes on black (digits).

Training tier (torch). Real MNIST digits are strokes on an exactly black background;
a generator tends to leave faint specks around them. The measure:

- a stroke pixel is one at least STROKE (half) as bright as white;
- the background is every pixel more than RADIUS (2) pixels from any stroke pixel
  (a (2r+1)-square max-pool of the stroke mask), which leaves out the soft edge that
  real strokes have;
- `border` is the share of the specks within RADIUS pixels of the image's edge (the
  ring is 23 % of a 32 px image): a generator whose last layer cannot reach black at
  the border shows it here (docs/training.md, "The generator's output bias");
- `speckle` is the share of background pixels brighter than LEVEL (0.05 of white,
  13 of 255 levels), `speckled_images` the share of images with at least one.

The 5,000 real mnist-5k digits at 32 px: 0.027 % of their background pixels, and 4.4 %
of the digits have one such pixel (a stray dot in the scan). Used by
benchmarks/quality_digits.py and bench_train.py's time-to-quality mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

STROKE = 0.5
RADIUS = 2
LEVEL = 0.05


@dataclass(frozen=True)
class SpeckleScore:
    speckle: float  # share of background pixels brighter than LEVEL
    speckled_images: float  # share of images with at least one such pixel
    border: float = 0.0  # share of those pixels within RADIUS pixels of the image's edge

    def __str__(self) -> str:
        return (f"speckle {self.speckle:.3%} of background pixels, {self.speckled_images:.1%} of images, "
                f"{self.border:.0%} of specks at the border")


@torch.no_grad()
def speckle_score(images: torch.Tensor) -> SpeckleScore:
    """images (N, C, H, W) float in [-1, 1] (channels averaged) -> their SpeckleScore."""
    x = (images.detach().float().mean(dim=1, keepdim=True) + 1) / 2  # (N, 1, H, W) in [0, 1]
    near_stroke = F.max_pool2d((x >= STROKE).float(), 2 * RADIUS + 1, stride=1, padding=RADIUS) > 0
    background = ~near_stroke
    specks = (x > LEVEL) & background
    ring = torch.ones(x.shape[-2:], dtype=torch.bool, device=x.device)
    ring[RADIUS:-RADIUS, RADIUS:-RADIUS] = False
    return SpeckleScore(
        speckle=float(specks.sum()) / max(int(background.sum()), 1),
        speckled_images=float(specks.flatten(1).any(dim=1).float().mean()) if len(x) else 0.0,
        border=float(specks[..., ring].sum()) / max(int(specks.sum()), 1),
    )
