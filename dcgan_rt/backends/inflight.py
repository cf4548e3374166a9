"""Keep a fixed number of batches in flight on a device (the GPU backends' `map_images`).

Core tier (no torch). While batch k's results are copied back and handed on, batch
k+1 is already computing: `enqueue` starts a batch and returns its slot, `collect`
waits for a slot and returns its array, `finish` turns that into what the caller gets.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

Slot = TypeVar("Slot")
IN_FLIGHT = 2


def pipelined(batches: Iterable, enqueue: Callable[[object], Slot],
              collect: Callable[[Slot], np.ndarray], finish: Callable[[np.ndarray], np.ndarray],
              depth: int = IN_FLIGHT) -> Iterator[np.ndarray]:
    """batches: dcgan_rt.batch.Batch objects (or bare z arrays), as the backend's enqueue takes them."""
    in_flight: deque = deque()
    for batch in batches:
        if len(in_flight) == depth:
            yield finish(collect(in_flight.popleft()))
        in_flight.append(enqueue(batch))
    while in_flight:
        yield finish(collect(in_flight.popleft()))
