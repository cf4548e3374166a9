"""The shard formats of `generate`: .npy shards and WebDataset-style .tar shards (dcgan_rt.writers has the rest).

Core tier (numpy + Pillow). Both gather a shard's IMAGES_PER_FILE images (fewer at the
job's edges) as batches arrive from the writer threads and put the shard in place
atomically and fsynced when its last image is in (npy images go into the shard's temp
file as they arrive; tar shards are written at once):

- npy: `images-000012.npy` uint8 (count, H, W, C); `latents-000012.npy` with
  --save-latents; `labels-000012.npy` for a conditional model (written before the
  images file, which marks the shard done); `index.json` lists every shard;
- tar: `shard-000012.tar` with `000012000.png` and, per sample, `.npy` latents and the
  `.cls` / `.json` label (dcgan_rt.label_files).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan_rt.atomic import atomic_open, temp_path, write_json
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
                        "images": _StreamedNpy(self.shard_paths(s)["images"], (hi - lo, *self.image_shape)),
                        "latents": np.empty((hi - lo, self.z_dim), dtype=np.float32) if self.save_latents else None,
                        "labels": self._label_array(hi - lo),
                    }
                staged = self._staged[s]
                at = indices[rows] - lo
                try:
                    staged["images"].write_rows(at, images[rows])
                except BaseException:
                    self._staged.pop(s)["images"].discard()
                    raise
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

    def discard_unfinished(self) -> None:
        with self._lock:
            for staged in self._staged.values():
                staged["images"].discard()
            self._staged.clear()

    def _write_shard(self, s: int, staged: dict) -> int:
        paths = self.shard_paths(s)
        try:  # latents and labels first: the images file marks the shard done
            nbytes = sum(_save_npy(paths[kind], staged[kind]) for kind in paths if kind != "images")
        except BaseException:
            staged["images"].discard()
            raise
        return nbytes + staged["images"].commit()

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


class _StreamedNpy:
    """A shard's images .npy, written into its temp file as batches arrive (pwrite at
    each row's offset, so order does not matter) and renamed into place, fsynced, once
    complete: the same bytes np.save writes, but the copy to the page cache overlaps
    inference instead of all of it following the last batch (on the 64x64 generator,
    ~22 ms of the ~38 ms a 1,000-image shard's np.save + fsync took at the end of a job)."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.count = path, shape[0]
        self.row_bytes = int(np.prod(shape[1:]))
        self.tmp = temp_path(path)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                      "fortran_order": False, "shape": shape})
        self.offset = len(header.getvalue())
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            self._pwrite(header.getvalue(), 0)
        except BaseException:
            self.discard()
            raise

    def write_rows(self, at: np.ndarray, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        if len(at) and at[-1] - at[0] + 1 == len(at) and np.all(np.diff(at) == 1):
            self._pwrite(memoryview(rows).cast("B"), self.offset + int(at[0]) * self.row_bytes)
            return
        for k, i in enumerate(at.tolist()):
            self._pwrite(memoryview(rows[k]).cast("B"), self.offset + i * self.row_bytes)

    def commit(self) -> int:
        try:
            os.fsync(self.fd)
        except BaseException:
            self.discard()
            raise
        os.close(self.fd)
        self.fd = None
        os.replace(self.tmp, self.path)
        return self.offset + self.count * self.row_bytes

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def _pwrite(self, data, offset: int) -> None:
        view = memoryview(data).cast("B")
        while view:  # a short write (a full disk reports ENOSPC on the next call)
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written


def _save_npy(path: Path, array: np.ndarray) -> int:
    with atomic_open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path.stat().st_size


def read_index(out_dir: Path) -> dict:
    try:
        return json.loads((Path(out_dir) / INDEX_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {Path(out_dir) / INDEX_NAME}: {exc}") from None
