"""What one `generate` job asks for: typed fields, checked once when the request is made.

Core tier (numpy only). Text from the command line (`--shard 0/4`, `--batch-size auto`,
`--label Smiling=1`) is parsed in dcgan_rt.cli; the core takes values: `shard` is a
(K, N) pair, `batch_size` an int or None for auto. A request that exists is valid:
`GenerateRequest(...)` raises UsageError naming the flag at fault, before any model
is loaded or file written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan_rt.errors import UsageError
from dcgan_rt.labels import LabelRequest
from dcgan_rt.latents import MAX_INDEX, MAX_SEED
from dcgan_rt.writers import LAYOUTS, check_format


@dataclass(frozen=True)
class GenerateRequest:
    model: str | Path
    out: str | Path
    n: int
    seed: int = 0
    start: int = 0
    batch_size: int | None = None  # None: measure and pick (--batch-size auto)
    backend: str = "auto"
    format: str = "png"
    shard: tuple[int, int] | None = None  # (K, N); None: from torchrun's RANK/WORLD_SIZE, else unsharded
    overwrite: bool = False
    save_latents: bool = False
    gpu: int | None = None  # CUDA device; None: 0, or LOCAL_RANK under torchrun
    precision: str | None = None  # "fp16": the torch backend on CUDA in half precision (opt-in)
    labels: LabelRequest = LabelRequest()  # a conditional model's labels; default: the label rule
    layout: str = "flat"  # png: "flat" (DIR/000000012.png) or "by-class" (DIR/<class>/000000012.png)

    def __post_init__(self) -> None:
        check_format(self.format)
        if self.layout not in LAYOUTS:
            raise UsageError(f"unknown --layout {self.layout!r}: choose one of {', '.join(LAYOUTS)}")
        if self.layout != "flat" and self.format != "png":
            raise UsageError(f"--layout {self.layout} is for --format png (npy and tar shards carry labels inside)")
        for flag, value, low in (("-n", self.n, 1), ("--start", self.start, 0), ("--seed", self.seed, 0)):
            _check_int(flag, value, low)
        if self.seed > MAX_SEED:
            raise UsageError(f"--seed must be at most {MAX_SEED}, got {self.seed}")
        if self.start + self.n - 1 > MAX_INDEX:
            raise UsageError(f"image indices must stay below 2^32: --start {self.start} + -n {self.n} is too far")
        if self.batch_size is not None:
            _check_int("--batch-size", self.batch_size, 1, "'auto' or ")
        if self.shard is not None:
            check_shard(*self.shard)
        if self.gpu is not None:
            _check_int("--gpu", self.gpu, 0, "a CUDA device number, ")
        object.__setattr__(self, "out", Path(self.out))
        for name in ("n", "seed", "start"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def job_shard(self, env=os.environ) -> tuple[int, int] | None:
        """The shard this process runs: the one asked for, else torchrun's rank, else None."""
        return self.shard if self.shard is not None else shard_from_env(env)


def _check_int(flag: str, value, low: int, what: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UsageError(f"{flag} must be {what}an integer >= {low}, got {value!r}")


def check_shard(k: int, n: int) -> tuple[int, int]:
    for value in (k, n):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UsageError(f"--shard must be two integers K/N, got {k!r}/{n!r}")
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {k}/{n}: shards are numbered 0..N-1, so K must be below N")
    return int(k), int(n)


def shard_from_env(env=os.environ) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun, when WORLD_SIZE > 1."""
    if "WORLD_SIZE" not in env:
        return None
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
    except ValueError:
        raise UsageError(
            f"RANK/WORLD_SIZE must be integers, got {env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}"
        ) from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise UsageError(f"RANK {rank} is outside 0..WORLD_SIZE-1 ({world})")
    return rank, world
