"""Training batches on the device: uint8 images gathered in the (seed, epoch) order, as floats in [-1, 1].

Training tier (torch). The order is dcgan_rt.train.data.epoch_batches' (under torchrun,
RankBatchSampler's share of it), so a resumed run continues with the very batch it stopped
before.
"""

from __future__ import annotations

from typing import Iterator

import torch

from dcgan_rt.train.data import TrainData, epoch_batches, to_float
from dcgan_rt.train.distributed import RankBatchSampler
from dcgan_rt.train.options import TrainOptions


def make_batches(data: TrainData, device: torch.device, opts: TrainOptions, epoch: int,
                 start: int, sampler: RankBatchSampler | None = None) -> Iterator[torch.Tensor]:
    """Float batches in [-1, 1] for `epoch`, from batch `start` on, in the (seed, epoch) order
    (under torchrun, this rank's share of each batch, from `sampler`)."""
    for batch, _ in make_labelled_batches(data, device, opts, epoch, start, sampler):
        yield batch


def make_labelled_batches(data: TrainData, device: torch.device, opts: TrainOptions, epoch: int, start: int,
                          sampler: RankBatchSampler | None = None, labels: torch.Tensor | None = None,
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """make_batches' batches with their labels: `labels` holds one per image of data.images
    (a conditional run), else every batch's labels are None."""
    images = data.images
    if device.type == "cuda" and images.numel() <= 2 * 1024**3:
        images = data.images_on(device)  # the uint8 set kept on the GPU: a batch is one gather
    if sampler is not None:
        sampler.set_epoch(epoch)
        index_batches = sampler.batches(start)
    else:
        index_batches = epoch_batches(data.num_images, opts.batch_size, opts.seed, epoch, start)
    for idx in index_batches:
        batch = images[idx.to(images.device)].to(device, non_blocking=True)
        batch = to_float(batch)
        if opts.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        yield batch, (labels[idx].to(device, non_blocking=True) if labels is not None else None)
