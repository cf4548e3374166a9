"""Output formats of `generate`: PNG files, .npy shards, WebDataset-style .tar shards.

Core tier (numpy + Pillow). Every file is named by the global index of its images,
so any batch size, shard split or resume writes the same files:

- png: `000001234.png` per image (grayscale or RGB); with --save-latents the latent
  beside it as `000001234.npy` (float32, (z_dim,)).
- npy: `images-000012.npy`, uint8 (count, H, W, C), holding indices
  12 * 1000 .. 12 * 1000 + 999 (clipped to the job's range); `latents-000012.npy`
  float32 (count, z_dim) with --save-latents; `index.json` lists every shard.
- tar: `shard-000012.tar` with `000012000.png`, ... (and `000012000.npy` latents
  with --save-latents): WebDataset reads `shard-{000000..000009}.tar` as is.

Writes are atomic: a temp name in the same folder, then rename. Shard files are
also fsynced (one per 1000 images); single PNGs are not, because an fsync per
image would cost more than encoding it, and rename alone already guarantees a
killed process never leaves a partial file under a final name. On resume a PNG is
also checked for its closing IEND chunk, which catches the one case rename cannot
(power loss before the data reached the disk).

`write_batch` is thread-safe: PNG encoding runs in several writer threads
(zlib releases the GIL); shard formats gather images per shard and write
a shard as soon as its last image arrives.
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

from dcgan_rt.atomic import atomic_open, write_bytes, write_json
from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.images import encode_pngs
from dcgan_rt.provenance import PngText

FORMATS = ("png", "npy", "tar")
IMAGES_PER_FILE = 1000  # npy and tar shards
INDEX_NAME = "index.json"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the fixed last 12 bytes of every PNG


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def index_name(i: int) -> str:
    return f"{i:09d}"


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def ranges_count(ranges: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in ranges)


def temp_target(name: str) -> str | None:
    """The final name a temp file of ours stands for: '.000000012.png.123-456.tmp' -> '000000012.png'."""
    if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 3:
        return None
    return name.rsplit(".", 2)[0][1:]


class Writer:
    """Base: knows which files hold which indices, what is finished, and how to read back."""

    format = ""
    unit = 1  # indices per file (the granularity of resume and of --shard splits)

    def __init__(self, out_dir: Path, image_shape: tuple[int, int, int], z_dim: int, save_latents: bool,
                 job: tuple[int, int], png_text: PngText | None = None):
        self.out_dir = Path(out_dir)
        self.png_text = png_text  # provenance chunks for every PNG (dcgan_rt.provenance)
        self.image_shape = tuple(image_shape)  # (H, W, C)
        self.z_dim = z_dim
        self.save_latents = save_latents
        self.job = job  # the whole job's [start, end): shards at its edges hold fewer images

    def encode(self, indices, images: np.ndarray) -> list[bytes]:
        """PNG bytes of a batch, each with its provenance chunks."""
        if self.png_text is None:
            return encode_pngs(images)
        return encode_pngs(images, text=self.png_text.for_batch(indices), common_text=self.png_text.constant)

    def pending(self, start: int, end: int, verify: bool = True) -> list[tuple[int, int]]:
        """Index ranges in [start, end) whose files are missing (or, with verify, damaged)."""
        raise NotImplementedError

    @classmethod
    def owns(cls, name: str) -> int | None:
        """The first index of the file unit `name` belongs to, or None if it is not ours."""
        raise NotImplementedError

    def write_batch(self, indices: np.ndarray, images: np.ndarray, latents: np.ndarray | None) -> int:
        """Write (or stage) one batch; returns bytes written to disk."""
        raise NotImplementedError

    def unfinished(self) -> int:
        """Images staged for shards that never completed (0 after a full run)."""
        return 0

    def finalize(self, start: int, end: int) -> None:
        """After the whole job is done (e.g. the npy index)."""

    def read(self, indices) -> np.ndarray:
        """uint8 (n, H, W, C) images at these global indices, from disk."""
        raise NotImplementedError

    def remove_temps(self, start: int, end: int) -> int:
        """Delete temp files a killed run left for the files of indices [start, end)."""
        removed = 0
        for entry in os.scandir(self.out_dir):
            target = temp_target(entry.name)
            first = None if target is None else self.owns(target)
            if first is not None and first < end and first + self.unit > start:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed


class PngWriter(Writer):
    format = "png"
    unit = 1
    _NAME = re.compile(r"^(\d{9,})\.(png|npy)$")

    @classmethod
    def owns(cls, name: str) -> int | None:
        m = cls._NAME.match(name)
        return int(m.group(1)) if m else None

    def path(self, i: int, suffix: str = ".png") -> Path:
        return self.out_dir / f"{index_name(i)}{suffix}"

    def _valid_png(self, path: str) -> bool:
        try:
            with open(path, "rb") as fh:
                fh.seek(-12, os.SEEK_END)
                return fh.read(12) == _PNG_END
        except OSError:
            return False

    def pending(self, start: int, end: int, verify: bool = True) -> list[tuple[int, int]]:
        pngs, npys = set(), set()
        for entry in os.scandir(self.out_dir):
            m = self._NAME.match(entry.name)
            if not m:
                continue
            i = int(m.group(1))
            if start <= i < end:
                if m.group(2) == "npy":
                    npys.add(i)
                elif not verify or self._valid_png(entry.path):
                    pngs.add(i)
        done = pngs & npys if self.save_latents else pngs
        return _gaps(sorted(done), start, end)

    def write_batch(self, indices, images, latents) -> int:
        written = 0
        for k, (i, data) in enumerate(zip(indices, self.encode(indices, images))):
            if latents is not None:
                z = npy_bytes(latents[k])
                write_bytes(self.path(int(i), ".npy"), z, fsync=False)
                written += len(z)
            write_bytes(self.path(int(i)), data, fsync=False)  # the PNG last: it marks the index done
            written += len(data)
        return written

    def read(self, indices) -> np.ndarray:
        out = []
        for i in indices:
            with Image.open(self.path(int(i))) as im:
                out.append(_as_hwc(np.asarray(im)))
        return np.stack(out)


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

    def write_batch(self, indices, images, latents) -> int:
        items = self._encode(indices, images, latents)  # outside the lock: runs in parallel
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

    def _encode(self, indices, images, latents) -> list[tuple[int, object]]:
        raise NotImplementedError

    def _write_shard(self, s: int, items: dict) -> int:
        raise NotImplementedError


class NpyWriter(_ShardWriter):
    format = "npy"
    _NAME = re.compile(r"^(images|latents)-(\d{6,})\.npy$")

    @classmethod
    def owns(cls, name: str) -> int | None:
        m = cls._NAME.match(name)
        return int(m.group(2)) * cls.unit if m else None

    def shard_files(self, s: int) -> list[Path]:
        files = [self.out_dir / f"images-{s:06d}.npy"]
        if self.save_latents:
            files.append(self.out_dir / f"latents-{s:06d}.npy")
        return files

    def write_batch(self, indices, images, latents) -> int:
        """Copies whole slices of the batch into preallocated shard arrays (no per-image work)."""
        indices = np.asarray(indices, dtype=np.int64)
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
                    }
                staged = self._staged[s]
                at = indices[rows] - lo
                staged["images"][at] = images[rows]
                if staged["latents"] is not None:
                    staged["latents"][at] = latents[rows]
                staged["done"] += len(rows)
                if staged["done"] == staged["expected"]:
                    full.append((s, self._staged.pop(s)))
        return sum(self._write_shard(s, staged) for s, staged in full)

    def unfinished(self) -> int:
        return sum(v["done"] for v in self._staged.values())

    def _write_shard(self, s: int, staged: dict) -> int:
        files = self.shard_files(s)
        written = 0
        if self.save_latents:  # latents first: the images file marks the shard done
            written += _save_npy(files[1], staged["latents"])
        written += _save_npy(files[0], staged["images"])
        return written

    def finalize(self, start: int, end: int) -> None:
        shards = []
        for s in range(self.shard_of(start), self.shard_of(end - 1) + 1):
            lo, hi = self.shard_span(s)
            files = self.shard_files(s)
            shards.append({"images": files[0].name, "latents": files[1].name if self.save_latents else None,
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
    _NAME = re.compile(r"^shard-(\d{6,})\.tar$")

    @classmethod
    def owns(cls, name: str) -> int | None:
        m = cls._NAME.match(name)
        return int(m.group(1)) * cls.unit if m else None

    def shard_files(self, s: int) -> list[Path]:
        return [self.out_dir / f"shard-{s:06d}.tar"]

    def _encode(self, indices, images, latents):
        return [(int(i), (png, None if latents is None else npy_bytes(latents[k])))
                for k, (i, png) in enumerate(zip(indices, self.encode(indices, images)))]

    def _write_shard(self, s: int, items: dict) -> int:
        path = self.shard_files(s)[0]
        with atomic_open(path, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for i, (png, npy) in items.items():
                    _add_member(tar, f"{index_name(i)}.png", png)
                    if npy is not None:
                        _add_member(tar, f"{index_name(i)}.npy", npy)
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
                    out.append(_as_hwc(np.asarray(im)))
        finally:
            for t in tars.values():
                t.close()
        return np.stack(out)


WRITERS = {"png": PngWriter, "npy": NpyWriter, "tar": TarWriter}


def make_writer(fmt: str, out_dir: Path, image_shape, z_dim: int, save_latents: bool,
                job: tuple[int, int], png_text: PngText | None = None) -> Writer:
    return WRITERS[check_format(fmt)](out_dir, image_shape, z_dim, save_latents, job, png_text)


def file_span(name: str) -> tuple[int, int] | None:
    """The index range of a file any format writes ('000000012.png' -> (12, 13)), else None."""
    for cls in WRITERS.values():
        first = cls.owns(name)
        if first is not None:
            return first, first + cls.unit
    return None


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


def _as_hwc(a: np.ndarray) -> np.ndarray:
    return a[:, :, None] if a.ndim == 2 else a


def _gaps(done: list[int], start: int, end: int) -> list[tuple[int, int]]:
    """Ranges of [start, end) not in the sorted list `done`."""
    gaps, cursor = [], start
    for i in done:
        if i > cursor:
            gaps.append((cursor, i))
        cursor = i + 1
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def read_index(out_dir: Path) -> dict:
    try:
        return json.loads((Path(out_dir) / INDEX_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {Path(out_dir) / INDEX_NAME}: {exc}") from None
