"""The DCGAN generator and discriminator (Radford et al., 2015), built from one ModelConfig.

Training tier (torch). Generator: a 4x4 projection by transposed convolution, then
stride-2 transposed convolutions + BatchNorm + ReLU doubling the resolution, tanh out
(the last transposed convolution with a bias where ModelConfig.g_out_bias says so).
Discriminator: stride-2 convolutions + BatchNorm + LeakyReLU(0.2) (no BatchNorm on
the first layer), a 4x4 convolution to one logit per image.

With ModelConfig.code_dim > 0 (InfoGAN, Chen et al., 2016) the generator turns the
first code_dim entries of z into a one-hot code, and the discriminator's last
convolution has code_dim more outputs, the code logits (InfoGAN's Q shares every
other layer with D). A generator is a continuous map, so one alone must spread its
output between the data's separate modes (digits that are half 4, half 9); a
discrete code lets it jump between them.

With ModelConfig.num_classes > 0 (or num_attrs > 0) the pair is conditional (cGAN,
Mirza & Osindero, 2014): the generator maps the label through a learned embedding
(nn.Embedding of a class index; a Linear of a 0/1 attribute vector) to
LABEL_EMBED_DIM entries concatenated to z, so its first transposed convolution reads
z_dim + LABEL_EMBED_DIM channels. An unconditional model has no embedding: its
parameters, their names and its outputs are those of the plain DCGAN.
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


def code_index(z: torch.Tensor, code_dim: int) -> torch.Tensor:
    """z (N, z_dim) -> (N,) the code the generator reads from each latent (0..code_dim-1)."""
    return z[:, :code_dim].argmax(dim=1)


def select_code(z: torch.Tensor, code_dim: int) -> torch.Tensor:
    """z (N, z_dim) with z[:, :code_dim] replaced by the one-hot of its argmax.

    The argmax of code_dim i.i.d. normals is uniform over the code_dim values, so the
    latents stay N(0, I) for every caller. Written as a comparison with the maximum
    (ReduceMax, Equal) rather than ArgMax + OneHot: those two ops run on every ONNX
    backend. An exact tie would give two ones; with float32 latents it does not happen.
    """
    head = z[:, :code_dim]
    one_hot = (head == head.amax(dim=1, keepdim=True)).to(z.dtype)
    return torch.cat([one_hot, z[:, code_dim:]], dim=1)


LABEL_EMBED_DIM = 50  # >= the 10 digit classes, so the embedding loses nothing a one-hot holds


def label_embedding(cfg: ModelConfig) -> nn.Module | None:
    """The generator's label embedding: class index -> vector, or 0/1 attributes -> vector."""
    if cfg.num_classes:
        return nn.Embedding(cfg.num_classes, LABEL_EMBED_DIM)
    if cfg.num_attrs:
        return nn.Linear(cfg.num_attrs, LABEL_EMBED_DIM)
    return None


class Generator(nn.Module):
    """z (N, z_dim) [, label] -> images (N, C, H, W) in [-1, 1].

    label: int64 (N,) class indices for num_classes > 0, float32 (N, num_attrs) 0/1
    attribute vectors for num_attrs > 0, None for an unconditional model.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = _g_channels(cfg, 4)
        self.in_channels = cfg.z_dim + (LABEL_EMBED_DIM if cfg.conditional else 0)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.in_channels, c, 4, 1, 0, bias=False),
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
            nn.ConvTranspose2d(c, cfg.img_channels, 4, 2, 1, bias=cfg.g_out_bias),
            nn.Tanh(),
        ]  # (N, img_channels, img_resolution, img_resolution)
        self.main = nn.Sequential(*layers)
        embed = label_embedding(cfg)
        if embed is not None:  # registered after main: main's names and init draws stay the plain DCGAN's
            self.label_embed = embed

    def latent_input(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, z_dim) [, label] -> the (N, z_dim [+ LABEL_EMBED_DIM], 1, 1) input of `main`
        (the code selected, if any; the label embedding appended for a conditional model).
        In float32 always: the fp16 export calls it before casting, so no two code
        entries can round to the same half and make a tie."""
        if self.cfg.code_dim:
            z = select_code(z, self.cfg.code_dim)
        if self.cfg.conditional:
            if label is None:
                raise ValueError("a conditional generator needs a label beside z")
            z = torch.cat([z, self.label_embed(label)], dim=1)
        return z.reshape(z.shape[0], self.in_channels, 1, 1)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(self.latent_input(z, label))


class Discriminator(nn.Module):
    """images (N, C, H, W) in [-1, 1] [, label] -> logits (N, 1 + code_dim [+ label logits]):
    column 0 says real (positive) or generated; then the code logits; then, for a conditional
    model with cond_d "acgan", the auxiliary classifier's label logits (num_classes or num_attrs).

    cond_d "projection" (Miyato & Koyama, 2018) adds <embed(label), phi(x)> to column 0, with
    phi(x) the (N, C*4*4) features the last convolution reads: a class-specific last layer."""

    def __init__(self, cfg: ModelConfig, cond_d: str = "projection"):
        super().__init__()
        self.cfg = cfg
        self.cond_d = cond_d if cfg.conditional else None
        num_labels = cfg.num_classes or cfg.num_attrs
        self.num_label_logits = num_labels if self.cond_d == "acgan" else 0
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
        self.num_outputs = 1 + cfg.code_dim + self.num_label_logits
        layers.append(nn.Conv2d(c, self.num_outputs, 4, 1, 0, bias=False))  # (N, outputs, 1, 1)
        self.main = nn.Sequential(*layers)
        if self.cond_d == "projection":
            features = c * 4 * 4
            self.label_proj = (nn.Embedding(cfg.num_classes, features) if cfg.num_classes
                               else nn.Linear(cfg.num_attrs, features, bias=False))

    def forward(self, images: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_d != "projection":
            return self.main(images).reshape(images.shape[0], self.num_outputs)
        if label is None:
            raise ValueError("a projection discriminator needs the label of each image")
        features = self.main[:-1](images)  # (N, C, 4, 4)
        out = self.main[-1](features).reshape(images.shape[0], self.num_outputs)
        projection = (self.label_proj(label) * features.flatten(1)).sum(dim=1, keepdim=True)
        return torch.cat([out[:, :1] + projection, out[:, 1:]], dim=1)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN init: convolutions N(0, 0.02) (and D's label projection, the same kind of last
    layer); BatchNorm weight N(1, 0.02), bias 0. G's label embedding keeps PyTorch's init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or (
                isinstance(m, (nn.Embedding, nn.Linear)) and isinstance(module, Discriminator)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:  # G's output bias (ModelConfig.g_out_bias) starts at 0
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: ModelConfig, init: bool = True) -> Generator:
    g = Generator(cfg)
    if init:
        init_dcgan_weights(g)
    return g


def build_discriminator(cfg: ModelConfig, init: bool = True, cond_d: str = "projection") -> Discriminator:
    d = Discriminator(cfg, cond_d)
    if init:
        init_dcgan_weights(d)
    return d
