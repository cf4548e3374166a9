"""`dcgan-rt generate`'s text options turned into the typed values of a GenerateRequest.

CLI tier. The core (dcgan_rt.generate_request) takes values, never command-line
strings: `--shard 0/4` becomes (0, 4), `--batch-size auto` None.
"""

from __future__ import annotations

import re

from dcgan_rt.errors import UsageError


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' -> (K, N); None stays None (torchrun's ranks, or unsharded)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise UsageError(f"--shard must look like K/N, e.g. 0/4, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise UsageError(f"--shard {text}: shards are numbered 0..N-1, so K must be below N")
    return k, n


def parse_batch_size(text: str) -> int | None:
    """'auto' -> None (measure and pick); else a positive integer."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {text!r}")
    return value
