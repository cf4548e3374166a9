"""One batch of generator work: global image indices, their latents z, and their labels.

Core tier (numpy only). A `Batch` is what flows from the latents through a backend
to the writers: `indices` (n,) int64 are the images' global indices, `z` (n, z_dim)
float32 their latents z(seed, i), `labels` None for an unconditional model, else
(n,) int64 class indices or (n, A) float32 0/1 attribute vectors. Backends feed
`z` (and `labels` as the model's `label` input); writers name files by `indices`
and record `labels` beside the images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    indices: np.ndarray  # (n,) int64
    z: np.ndarray  # (n, z_dim) float32
    labels: np.ndarray | None = None  # (n,) int64 or (n, A) float32; None: unconditional

    def __len__(self) -> int:
        return len(self.z)

    @classmethod
    def of(cls, z, labels=None, indices=None) -> "Batch":
        """A batch from bare arrays (indices 0..n-1 unless given): for callers with latents in hand."""
        z = np.asarray(z)
        idx = np.arange(len(z), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        return cls(idx, z, None if labels is None else np.asarray(labels))

    def __getitem__(self, rows: slice) -> "Batch":
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise ValueError("a Batch slices in steps of 1")
        return self.take(start, stop)

    def take(self, start: int, stop: int) -> "Batch":
        """Rows start..stop-1 (views, no copies)."""
        labels = None if self.labels is None else self.labels[start:stop]
        return Batch(self.indices[start:stop], self.z[start:stop], labels)

    def split(self, parts: int) -> list["Batch"]:
        """`parts` nearly equal consecutive slices (as np.array_split), none empty."""
        parts = max(1, min(parts, len(self)))
        size, extra = divmod(len(self), parts)
        bounds = np.cumsum([0] + [size + (k < extra) for k in range(parts)]).tolist()
        return [self.take(a, b) for a, b in zip(bounds, bounds[1:])]


def as_batch(value) -> Batch:
    """A Batch as is; a bare latent array (n, z_dim) as an unlabelled batch."""
    return value if isinstance(value, Batch) else Batch.of(value)
