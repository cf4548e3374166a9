"""`dcgan-rt generate`'s text options turned into the typed values of a GenerateRequest.

CLI tier. The core (dcgan_rt.generate_request) takes values, never command-line
strings: `--shard 0/4` becomes (0, 4), `--batch-size auto` None, `--label Smiling=1`
a LabelRequest.
"""

from __future__ import annotations

import re
from pathlib import Path

from dcgan_rt.errors import UsageError
from dcgan_rt.labels import LabelRequest


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


def parse_labels(label: str | None, labels_file: Path | None) -> LabelRequest:
    """--label 7 / --label seven (a class by index or name), --label Smiling=1,Male=0
    (attribute values), --labels-file labels.csv; at most one of the two options."""
    if label is not None and labels_file is not None:
        raise UsageError("give --label or --labels-file, not both")
    if labels_file is not None:
        return LabelRequest(file=Path(labels_file))
    if label is None:
        return LabelRequest()
    text = label.strip()
    if not text:
        raise UsageError("--label is empty: give a class (--label 7) or attribute values (--label Smiling=1,Male=0)")
    if "=" not in text:
        return LabelRequest(cls=text)
    attrs: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or value not in ("0", "1"):
            raise UsageError(f"--label {label}: attribute values look like Smiling=1,Male=0 (each 0 or 1)")
        if name in attrs:
            raise UsageError(f"--label {label}: {name} is given twice")
        attrs[name] = int(value)
    return LabelRequest(attrs=attrs)
