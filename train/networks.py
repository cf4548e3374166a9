"""The DCGAN generator and discriminator (Radford et al., 2015), built from one ModelConfig.

Training tier (torch). Generator: a 4x4 projection by transposed convolution, then
stride-2 transposed convolutions + BatchNorm + ReLU doubling the resolution, tanh out.
Discriminator: stride-2 convolutions + BatchNorm + LeakyReLU(0.2) (no BatchNorm on
the first layer), a 4x4 convolution to one logit per image.
"""

from __future__ import annotations

import torch
from torch import nn

from dcgan_rt.config import ModelConfig


def _g_channels(cfg: ModelConfig, resolution: int) -> int:
    """Generator width at a given feature-map resolution (ngf * res / (2 * resolution))."""
    return cfg.g_width * cfg.img_resolution // (2 * resolution)


def _d_channels(cfg: ModelConfig, resolution: int) -> int:
    return cfg.d_width * cfg.img_resolution // (2 * resolution)


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = _g_channels(cfg, 4)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, c, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        ]  # (N, g_width * res/8, 4, 4)
        resolution = 4
        while resolution * 2 < cfg.img_resolution:
            c_out = _g_channels(cfg, resolution * 2)
            layers += [
                nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]  # (N, c_out, 2r, 2r)
            c, resolution = c_out, resolution * 2
        layers += [
            nn.ConvTranspose2d(c, cfg.img_channels, 4, 2, 1, bias=False),
            nn.Tanh(),
        ]  # (N, img_channels, img_resolution, img_resolution)
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.cfg.z_dim, 1, 1))


class Discriminator(nn.Module):
    """images (N, C, H, W) in [-1, 1] -> logits (N,)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.d_width
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.img_channels, c, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]  # (N, d_width, res/2, res/2)
        resolution = cfg.img_resolution // 2
        while resolution > 4:
            c_out = _d_channels(cfg, resolution // 2)
            layers += [
                nn.Conv2d(c, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]  # (N, c_out, r/2, r/2)
            c, resolution = c_out, resolution // 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))  # (N, 1, 1, 1)
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).reshape(-1)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init: convolutions N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: ModelConfig, init: bool = True) -> Generator:
    g = Generator(cfg)
    if init:
        init_dcgan_weights(g)
    return g


def build_discriminator(cfg: ModelConfig, init: bool = True) -> Discriminator:
    d = Discriminator(cfg)
    if init:
        init_dcgan_weights(d)
    return d
