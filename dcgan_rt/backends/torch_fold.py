"""BatchNorm folded into the transposed convolutions before it: the inference form of a generator.

Core tier in placement; torch is imported by the caller that built the generator.
At inference BatchNorm is a per-channel affine map, y = (x - mean) * gamma / sqrt(var + eps) + beta,
and the ConvTranspose2d before it is linear in its output channels, so both become one
ConvTranspose2d with weight W * s (s = gamma / sqrt(var + eps), broadcast over W's
output-channel axis, dim 1 for a transposed convolution) and bias beta - mean * s.
This is what the ONNX export's optimiser does too; here it saves the torch CUDA
backend a kernel launch and a full read and write of every activation per layer.
"""

from __future__ import annotations


def fold_batchnorm(generator):
    """An eval-mode copy of `generator` (dcgan_rt.train.networks.Generator) with no BatchNorm.

    The copy takes z (N, z_dim) and, for a conditional model, the label, like the
    original; latent_input (the InfoGAN code selection, the label embedding) stays in
    float32 whatever dtype the layers are cast to."""
    import copy

    import torch
    from torch import nn

    layers: list[nn.Module] = []
    pending: nn.ConvTranspose2d | None = None
    for module in generator.main:
        if isinstance(module, nn.ConvTranspose2d):
            if pending is not None:
                layers.append(pending)
            pending = _copy_conv(module)
        elif isinstance(module, nn.BatchNorm2d):
            if pending is None:
                raise ValueError("a BatchNorm2d without a ConvTranspose2d before it cannot be folded")
            _fold_into(pending, module)
            layers.append(pending)
            pending = None
        else:
            if pending is not None:
                layers.append(pending)
                pending = None
            layers.append(type(module)() if isinstance(module, (nn.ReLU, nn.Tanh)) else module)
    if pending is not None:
        layers.append(pending)

    class FoldedGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = generator.cfg
            self.in_channels = generator.in_channels
            self.main = nn.Sequential(*layers)
            if hasattr(generator, "label_embed"):
                self.label_embed = copy.deepcopy(generator.label_embed)

        def latent_input(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
            return type(generator).latent_input(self, z, label)  # the original's rule, on this copy's embedding

        def half(self):
            super().half()
            if hasattr(self, "label_embed"):
                self.label_embed.float()  # latent_input runs in float32 (see above)
            return self

        def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
            x = self.latent_input(z.float(), label)  # (N, in_channels, 1, 1)
            return self.main(x.to(self.main[0].weight.dtype))

    return FoldedGenerator().eval()


def _copy_conv(conv):
    import torch
    from torch import nn

    new = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                             conv.output_padding, conv.groups, bias=True, dilation=conv.dilation,
                             device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        new.bias.copy_(conv.bias if conv.bias is not None else torch.zeros_like(new.bias))
    return new


def _fold_into(conv, bn) -> None:
    import torch

    with torch.no_grad():
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
        weight = conv.weight.double() * scale.view(1, -1, 1, 1)  # ConvTranspose2d: (C_in, C_out, k, k)
        bias = (conv.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
        conv.weight.copy_(weight.to(conv.weight.dtype))
        conv.bias.copy_(bias.to(conv.bias.dtype))
