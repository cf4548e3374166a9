"""`--batch-size auto`: pick the batch size by timing real batches of the job itself.

Core tier (numpy only). The batches measured are the job's own first images; they
are handed on to be written like any others, so measuring costs no extra inference.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import numpy as np

from dcgan_rt.batch import Batch

BATCH_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CPU_MAX_BATCH = 1024  # the largest size tried on a CPU backend
TUNE_BATCHES = 4  # per round: two rounds of two batches side by side on two cores
TUNE_SHARE = 0.1  # of the job's expected time, at most, spent measuring batch sizes


class IndexStream:
    """Hands out the pending indices in batches, across gaps left by earlier runs."""

    def __init__(self, ranges: list[tuple[int, int]]):
        self._ranges = deque(ranges)
        self.left = sum(b - a for a, b in ranges)

    def take(self, k: int) -> np.ndarray | None:
        parts, need = [], k
        while need and self._ranges:
            a, b = self._ranges[0]
            m = min(need, b - a)
            parts.append(np.arange(a, a + m, dtype=np.int64))
            need -= m
            if a + m == b:
                self._ranges.popleft()
            else:
                self._ranges[0] = (a + m, b)
        self.left -= k - need
        return np.concatenate(parts) if parts else None


def tune_batch_size(backend, stream: IndexStream, make_batch: Callable[[np.ndarray], Batch],
                    emit: Callable[[Batch, np.ndarray], None]) -> tuple[int, dict[int, float]]:
    """Time real batches of growing size the way the run will make them
    (backend.map_images, so batches in flight count), hand their images to `emit`
    and pick the fastest size; stop once two sizes in a row are slower, or when
    measuring further would take more than a tenth of the job's expected time (a job
    too short to compare two sizes within that tenth takes the smallest unmeasured). Each
    size gets two rounds of a few batches; the faster round counts, since the first
    may include one-off setup for a new shape. Returns (size, images/s by size)."""
    cap = backend.max_batch or (BATCH_CANDIDATES[-1] if backend.device != "cpu" else CPU_MAX_BATCH)
    rates: dict[int, float] = {}
    sizes = [b for b in BATCH_CANDIDATES if b <= cap]
    if not sizes or stream.left < 2 * TUNE_BATCHES * sizes[0]:  # too few images to measure: one batch
        return max(1, min(stream.left, cap)), rates
    if len(sizes) < 2 or stream.left * TUNE_SHARE < 2 * TUNE_BATCHES * (sizes[0] + sizes[1]):
        # A short job (under 3,840 images with these settings) could measure only the
        # first size within its tenth, and so would always pick it: skip measuring, whose
        # drained rounds cost ~2% of a 2,000-image npy run on the 64x64 generator.
        return sizes[0], rates
    best, worse = None, 0
    t_start, total = time.perf_counter(), stream.left
    for size in sizes:
        need = 2 * TUNE_BATCHES * size
        if stream.left < need:
            break
        if best is not None:
            # Measuring runs at sizes that are not the best, with the pipeline drained
            # between rounds: keep it to a small share of the job's expected time.
            spent = time.perf_counter() - t_start
            if spent + need / rates[best] > TUNE_SHARE * total / rates[best]:
                break
        fastest = 0.0
        for _ in range(2):
            batches = [make_batch(stream.take(size)) for _ in range(TUNE_BATCHES)]
            t0 = time.perf_counter()
            made = list(backend.map_images(batches))
            fastest = max(fastest, TUNE_BATCHES * size / max(time.perf_counter() - t0, 1e-9))
            for batch, images in zip(batches, made):
                emit(batch, images)
        rates[size] = fastest
        if best is None or rates[size] > rates[best]:
            best, worse = size, 0
        else:
            worse += 1
            if worse == 2:
                break
    return best, rates
