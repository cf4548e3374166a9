"""Where and how the networks train: device, mixed-precision dtype, memory format, SyncBatchNorm.

Training tier (torch). The Trainer (dcgan_rt.train.loop) places G and D with
`wrap_models` and autocasts with `autocast_dtype`; the DDP wrappers go on top there.
"""

from __future__ import annotations

import torch
from torch import nn

from dcgan_rt.errors import UsageError
from dcgan_rt.train.distributed import SINGLE, World, convert_sync_batchnorm
from dcgan_rt.train.options import TrainOptions


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is visible to PyTorch: use --device cpu (or auto)")
    return torch.device(name)


def autocast_dtype(device: torch.device, opts: TrainOptions) -> torch.dtype | None:
    """bf16 where the GPU computes it natively (no loss scaling needed), else fp16 with a
    GradScaler; None on the CPU or with --no-amp."""
    if device.type != "cuda" or not opts.amp:
        return None
    return amp_dtype_for(torch.cuda.get_device_capability(device))


def amp_dtype_for(capability: tuple[int, int]) -> torch.dtype:
    """Native bf16 arrived with compute capability 8 (Ampere). torch.cuda.is_bf16_supported()
    also counts emulation, which would put a T4 or V100 on slow emulated bf16."""
    return torch.bfloat16 if capability[0] >= 8 else torch.float16


def wrap_models(g: nn.Module, d: nn.Module, device: torch.device, opts: TrainOptions,
                world: World = SINGLE) -> tuple[nn.Module, nn.Module]:
    """Place the models for training (channels_last: NHWC is what cuDNN and oneDNN's
    fastest convolutions use, measured 15-20 % faster on the CPU here too;
    SyncBatchNorm with --sync-bn under torchrun). The DDP wrappers go on top (Trainer)."""
    g, d = g.to(device), d.to(device)
    if opts.channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    if opts.sync_bn:
        g = convert_sync_batchnorm(g, world)
        if not sync_bn_keeps_d_local(opts):
            d = convert_sync_batchnorm(d, world)
    return g, d


def sync_bn_keeps_d_local(opts: TrainOptions) -> bool:
    """R1 differentiates D's gradient, and SyncBatchNorm's backward cannot be differentiated
    again (pytorch issue 61222): with R1 on, --sync-bn synchronises G's BatchNorm only."""
    return opts.sync_bn and opts.r1_gamma > 0
