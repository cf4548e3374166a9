"""How a conditional model's labels are written beside its images, in every output format.

Core tier (numpy). The writers (dcgan_rt.writers) call these:

- `labels.csv` (png, always for a conditional model): `index,label` with the class
  name, or `index,<attr>,...` with one 0/1 column per attribute; it reads back with
  `generate --labels-file`;
- class folders (png `--layout by-class`): DIR/<class name>/000000012.png, the layout
  torchvision's ImageFolder loads (its class indices are the sorted folder names);
- tar samples: `000000012.cls` (the class index as text, WebDataset's convention) or
  `000000012.json` ({"Smiling": 1, ...}) beside `000000012.png`;
- npy shards: `labels-000012.npy` beside `images-000012.npy` (int64 (n,) class
  indices, or float32 (n, A) 0/1 vectors: what the model was fed).
"""

from __future__ import annotations

import json
import os

import numpy as np

from dcgan_rt.errors import UsageError
from dcgan_rt.labels import LabelRule

LABELS_NAME = "labels.csv"


def labels_csv(rule: LabelRule, seed: int, start: int, end: int) -> bytes:
    """The labels.csv of images start..end-1 (from the rule: a pure function of seed and index)."""
    idx = np.arange(start, end, dtype=np.int64)
    values = rule.labels(seed, idx)
    if rule.kind == "class":
        names = np.asarray(rule.names, dtype=object)
        lines = ["index,label", *(f"{i},{_csv_cell(n)}" for i, n in zip(idx.tolist(), names[values]))]
    else:
        bits = values.astype(np.int64)
        lines = [",".join(["index", *map(_csv_cell, rule.names)]),
                 *(f"{i}," + ",".join(map(str, row)) for i, row in zip(idx.tolist(), bits.tolist()))]
    return ("\n".join(lines) + "\n").encode()


def _csv_cell(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def check_folder_names(rule: LabelRule | None) -> None:
    """--layout by-class needs class names that are plain folder names."""
    if rule is None or rule.kind != "class":
        raise UsageError("--layout by-class needs a class-conditional model (its classes name the folders); "
                         "use the default --layout flat")
    for name in rule.names:
        if name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name) or "\0" in name:
            raise UsageError(f"class name {name!r} cannot be a folder name: use --layout flat (labels.csv "
                             "holds the classes)")


def sample_label_entry(rule: LabelRule, label) -> tuple[str, bytes]:
    """(suffix, bytes) of a tar sample's label: '.cls' with the class index, or '.json'."""
    if rule.kind == "class":
        return ".cls", str(int(label)).encode()
    values = {name: int(v) for name, v in zip(rule.names, np.asarray(label).tolist())}
    return ".json", json.dumps(values).encode()
