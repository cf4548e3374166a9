"""The shard formats of `generate`: .npy shards and WebDataset-style .tar shards (dcgan_rt.writers has the rest).

Core tier (numpy + Pillow). Both gather a shard's IMAGES_PER_FILE images (fewer at the
job's edges) as batches arrive from the writer threads and write the shard at once,
atomically and fsynced, when its last image is in:

- npy: `images-000012.npy` uint8 (count, H, W, C); `latents-000012.npy` with
  --save-latents; `labels-000012.npy` for a conditional model (written before the
  images file, which marks the shard done); `index.json` lists every shard;
- tar: `shard-000012.tar` with `000012000.png` and, per sample, `.npy` latents and the
  `.cls` / `.json` label (dcgan_rt.label_files).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan_rt.atomic import atomic_open, write_json
from dcgan_rt.batch import Batch
from dcgan_rt.errors import ArtifactError
from dcgan_rt.label_files import sample_label_entry
from dcgan_rt.writers import IMAGES_PER_FILE, INDEX_NAME, Writer, as_hwc, index_name, npy_bytes


class _ShardWriter(Writer):
    """Shared by npy and tar: images gather per shard; a full shard is written at once."""

    unit = IMAGES_PER_FILE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._staged: dict[int, dict] = {}  # shard number -> {"expected", "items": {index: ...}}

    def shard_of(self, i: int) -> int:
        return i // self.unit

    def shard_span(self, s: int) -> tuple[int, int]:
        start, end = self.job
        return max(s * self.unit, start), min((s + 1) * self.unit, end)

    def shard_files(self, s: int) -> list[Path]:
        return list(self.shard_paths(s).values())

    def shard_paths(self, s: int) -> dict[str, Path]:
        """Shard `s`'s files by kind."""
        raise NotImplementedError

    def pending(self, start: int, end: int, verify: bool = True) -> list[tuple[int, int]]:
        todo = []
        for s in range(self.shard_of(start), self.shard_of(end - 1) + 1):
            if not all(p.is_file() for p in self.shard_files(s)):
                lo, hi = self.shard_span(s)
                lo, hi = max(lo, start), min(hi, end)
                if todo and todo[-1][1] == lo:
                    todo[-1] = (todo[-1][0], hi)
                else:
                    todo.append((lo, hi))
        return todo

    def write_batch(self, batch: Batch, images: np.ndarray) -> int:
        items = self._encode(batch, images)  # outside the lock: runs in parallel
        full = []
        with self._lock:
            for i, item in items:
                s = self.shard_of(i)
                if s not in self._staged:
                    lo, hi = self.shard_span(s)
                    self._staged[s] = {"expected": hi - lo, "items": {}}
                staged = self._staged[s]
                staged["items"][i] = item
                if len(staged["items"]) == staged["expected"]:
                    full.append((s, self._staged.pop(s)["items"]))
        return sum(self._write_shard(s, dict(sorted(got.items()))) for s, got in full)

    def unfinished(self) -> int:
        return sum(len(v["items"]) for v in self._staged.values())

    def _encode(self, batch: Batch, images: np.ndarray) -> list[tuple[int, object]]:
        raise NotImplementedError

    def _write_shard(self, s: int, items: dict) -> int:
        raise NotImplementedError


class NpyWriter(_ShardWriter):
    format = "npy"
    _NAME = re.compile(r"^(images|latents|labels)-(?P<unit>\d{6,})\.npy$")

    def shard_paths(self, s: int) -> dict[str, Path]:
        """{"images": ..., "latents": ... (with --save-latents), "labels": ... (conditional)}"""
        kinds = ["images"] + ["latents"] * self.save_latents + ["labels"] * (self.rule is not None)
        return {kind: self.out_dir / f"{kind}-{s:06d}.npy" for kind in kinds}

    def _label_array(self, n: int) -> np.ndarray | None:
        if self.rule is None:
            return None
        if self.rule.kind == "class":
            return np.empty(n, dtype=np.int64)
        return np.empty((n, self.rule.num_labels), dtype=np.float32)

    def write_batch(self, batch: Batch, images: np.ndarray) -> int:
        """Copies whole slices of the batch into preallocated shard arrays (no per-image work)."""
        indices, latents = np.asarray(batch.indices, dtype=np.int64), self._latents(batch)
        shards = indices // self.unit
        full = []
        with self._lock:
            for s in np.unique(shards).tolist():
                rows = np.flatnonzero(shards == s)
                lo, hi = self.shard_span(s)
                if s not in self._staged:
                    self._staged[s] = {
                        "expected": hi - lo, "done": 0,
                        "images": np.empty((hi - lo, *self.image_shape), dtype=np.uint8),
                        "latents": np.empty((hi - lo, self.z_dim), dtype=np.float32) if self.save_latents else None,
                        "labels": self._label_array(hi - lo),
                    }
                staged = self._staged[s]
                at = indices[rows] - lo
                staged["images"][at] = images[rows]
                if staged["latents"] is not None:
                    staged["latents"][at] = latents[rows]
                if staged["labels"] is not None:
                    staged["labels"][at] = batch.labels[rows]
                staged["done"] += len(rows)
                if staged["done"] == staged["expected"]:
                    full.append((s, self._staged.pop(s)))
        return sum(self._write_shard(s, staged) for s, staged in full)

    def unfinished(self) -> int:
        return sum(v["done"] for v in self._staged.values())

    def _write_shard(self, s: int, staged: dict) -> int:
        paths = self.shard_paths(s)
        # images last: the images file marks the shard done
        return sum(_save_npy(paths[kind], staged[kind]) for kind in sorted(paths, key=lambda k: k == "images"))

    def finalize(self, start: int, end: int) -> None:
        shards = []
        for s in range(self.shard_of(start), self.shard_of(end - 1) + 1):
            lo, hi = self.shard_span(s)
            paths = self.shard_paths(s)
            shards.append({"images": paths["images"].name,
                           "latents": paths["latents"].name if "latents" in paths else None,
                           **({"labels": paths["labels"].name} if "labels" in paths else {}),
                           "first_index": lo, "count": hi - lo})
        h, w, c = self.image_shape
        write_json(self.out_dir / INDEX_NAME, {
            "format": "dcgan-rt/npy-shards", "dtype": "uint8", "layout": "NHWC", "image_shape": [h, w, c],
            "images_per_file": self.unit, "start": start, "count": end - start, "shards": shards,
        })

    def read(self, indices) -> np.ndarray:
        indices = [int(i) for i in indices]
        out, cache = [], {}
        for i in indices:
            s = self.shard_of(i)
            if s not in cache:
                cache[s] = np.load(self.shard_files(s)[0], mmap_mode="r")
            out.append(np.asarray(cache[s][i - self.shard_span(s)[0]]))
        return np.stack(out)


class TarWriter(_ShardWriter):
    format = "tar"
    _NAME = re.compile(r"^shard-(?P<unit>\d{6,})\.tar$")

    def shard_paths(self, s: int) -> dict[str, Path]:
        return {"tar": self.out_dir / f"shard-{s:06d}.tar"}

    def _encode(self, batch: Batch, images: np.ndarray):
        latents = self._latents(batch)
        return [(int(i), (png, None if latents is None else npy_bytes(latents[k]),
                          None if batch.labels is None else sample_label_entry(self.rule, batch.labels[k])))
                for k, (i, png) in enumerate(zip(batch.indices, self.encode(batch, images)))]

    def _write_shard(self, s: int, items: dict) -> int:
        path = self.shard_files(s)[0]
        with atomic_open(path, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for i, (png, npy, label) in items.items():
                    _add_member(tar, f"{index_name(i)}.png", png)
                    if npy is not None:
                        _add_member(tar, f"{index_name(i)}.npy", npy)
                    if label is not None:
                        _add_member(tar, f"{index_name(i)}{label[0]}", label[1])
        return path.stat().st_size

    def read(self, indices) -> np.ndarray:
        out, tars = [], {}
        try:
            for i in (int(i) for i in indices):
                s = self.shard_of(i)
                if s not in tars:
                    tars[s] = tarfile.open(self.shard_files(s)[0])
                member = tars[s].extractfile(f"{index_name(i)}.png")
                with Image.open(io.BytesIO(member.read())) as im:
                    out.append(as_hwc(np.asarray(im)))
        finally:
            for t in tars.values():
                t.close()
        return np.stack(out)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # byte-identical shards whatever day they were made
    tar.addfile(info, io.BytesIO(data))


def _save_npy(path: Path, array: np.ndarray) -> int:
    with atomic_open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path.stat().st_size


def read_index(out_dir: Path) -> dict:
    try:
        return json.loads((Path(out_dir) / INDEX_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {Path(out_dir) / INDEX_NAME}: {exc}") from None
