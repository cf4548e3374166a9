"""The memorisation figure: do generated images copy training images?

Training tier (torch). With a few hundred photos a generator can score a good FID by
reproducing its training set, and faces that copy real people are a privacy problem
for anyone synthesising a data set. The figure is

    median over generated g of  min_r ||g - r||        (its nearest real image)
    ----------------------------------------------------------------------------
    median over real r of  min_{r' != r} ||r - r'||    (its nearest other real image)

with L2 distances between whole images as [0, 1] pixels (uint8 / 255) at the model's
resolution and channels. About 0: the generator copies; about 1: generated images are
as far from the training set as its photos are from each other (a held-out photo of a
person already in the set scores below 1); far above 1: far from every training image.

Exact duplicates among the real images are counted once (else a set with copies in it
would divide by zero). Cost: (generated + real) x real image distances, one matrix
product each; `reference_size` real images (5,000, fewer above 64 px RGB so they
stay within 256 MB as floats; a fixed subset, the same for every model) and the first
`MAX_GENERATED` generated ones keep it to seconds for any data set (1,000 against
5,000 at 64 px RGB: 15 s on two busy CPU cores). A subset of a big set can miss a copy
of an image outside it; for sets up to that size (ORL, a folder of a few thousand
faces) every image is compared. Generated images are compared with the real images and
their mirror images (ADA's x-flip would let a generator copy a photo mirrored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dcgan_rt.errors import UsageError

MAX_REAL = 5_000
MAX_REAL_VALUES = 64 * 2**20  # float32 pixels of the real side held at once: 256 MB
MAX_GENERATED = 1_000
_CHUNK = 256  # query rows per distance matrix: (256, MAX_REAL) floats at a time


@dataclass(frozen=True)
class Memorization:
    ratio: float  # median nearest-real distance of generated images / the real images' own
    median_generated: float  # median distance from a generated image to its nearest real one
    median_real: float  # median distance from a real image to its nearest other real one
    num_generated: int
    num_real: int  # distinct real images compared

    def to_dict(self) -> dict:
        return {"memorization": round(self.ratio, 4),
                "memorization_nn_generated": round(self.median_generated, 4),
                "memorization_nn_real": round(self.median_real, 4),
                "memorization_num_generated": self.num_generated,
                "memorization_num_real": self.num_real}


def reference_size(image_shape: tuple[int, ...]) -> int:
    """How many real images (C, R, R) are compared: MAX_REAL, fewer for big images."""
    return max(2, min(MAX_REAL, MAX_REAL_VALUES // int(np.prod(image_shape))))


def _flat(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.reshape(images_u8.shape[0], -1).float().div_(255.0)


def nearest_distances(queries: torch.Tensor, refs: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """L2 distance from each query row to its nearest row of `refs` ((n, D) and (m, D) floats).
    With exclude_self the queries are the refs and a row's own match does not count."""
    ref_sq = (refs * refs).sum(dim=1)
    distances = torch.empty(queries.shape[0], dtype=torch.float64)
    for start in range(0, queries.shape[0], _CHUNK):
        q = queries[start:start + _CHUNK]
        d2 = (q * q).sum(dim=1, keepdim=True) + ref_sq - 2.0 * (q @ refs.T)
        if exclude_self:
            rows = torch.arange(q.shape[0])
            d2[rows, rows + start] = float("inf")
        # The matrix product finds the neighbour; its distance is recomputed directly, in
        # float64, so an exact copy measures 0, not float32 rounding noise.
        nearest = refs[d2.argmin(dim=1)]
        distances[start:start + q.shape[0]] = (q.double() - nearest.double()).norm(dim=1)
    return distances


def distinct(images_u8: torch.Tensor) -> torch.Tensor:
    """The images without exact duplicates (the first of each kept, order preserved)."""
    flat = images_u8.reshape(images_u8.shape[0], -1).numpy()
    _, first = np.unique(flat, axis=0, return_index=True)
    return images_u8[torch.from_numpy(np.sort(first))]


class MemorizationReference:
    """The real side, prepared once: the distinct real images and their own median distance."""

    def __init__(self, real_u8: torch.Tensor):
        real = distinct(real_u8)
        if real.shape[0] < 2:
            raise UsageError("the memorisation figure needs at least 2 different real images")
        self.real = _flat(real)
        # A generator trained with x-flip augmentation may copy a photo mirrored: generated
        # images are compared with the photos and their mirror images alike.
        self.real_and_mirrors = torch.cat([self.real, _flat(real.flip(-1))])
        self.median_real = float(np.median(nearest_distances(self.real, self.real, exclude_self=True).numpy()))

    def score(self, generated_u8: torch.Tensor) -> Memorization:
        fake = _flat(generated_u8[:MAX_GENERATED])
        median_generated = float(np.median(nearest_distances(fake, self.real_and_mirrors).numpy()))
        return Memorization(median_generated / self.median_real, median_generated, self.median_real,
                            int(fake.shape[0]), int(self.real.shape[0]))
