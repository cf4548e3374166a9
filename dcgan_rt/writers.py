"""Output formats of `generate`: PNG files, .npy shards, WebDataset-style .tar shards.

Core tier (numpy + Pillow). Every file is named by the global index of its images,
so any batch size, shard split or resume writes the same files:

- png: `000001234.png` per image (grayscale or RGB); with --save-latents the latent
  beside it as `000001234.npy` (float32, (z_dim,)). A conditional model's images get
  `labels.csv`, and with `--layout by-class` go to `<class name>/000001234.png`.
- npy: `images-000012.npy`, uint8 (count, H, W, C), holding indices
  12 * 1000 .. 12 * 1000 + 999 (clipped to the job's range); `latents-000012.npy`
  float32 (count, z_dim) with --save-latents; `labels-000012.npy` for a conditional
  model; `index.json` lists every shard.
- tar: `shard-000012.tar` with `000012000.png`, ... (and `000012000.npy` latents
  with --save-latents, `000012000.cls` / `.json` labels): WebDataset reads
  `shard-{000000..000009}.tar` as is.

dcgan_rt.label_files says how labels are written; the npy and tar writers live in
dcgan_rt.shard_writers.

Writes are atomic: a temp name in the same folder, then rename. Shard files are
also fsynced (one per 1000 images); single PNGs are not, because an fsync per
image would cost more than encoding it, and rename alone already guarantees a
killed process never leaves a partial file under a final name. On resume a PNG is
also checked for its closing IEND chunk, which catches the one case rename cannot
(power loss before the data reached the disk).

`write_batch(batch, images)` takes the dcgan_rt.batch.Batch the images were made
from (its indices name the files, its z are the saved latents) and is thread-safe: PNG encoding runs in several writer threads
(zlib releases the GIL); shard formats gather images per shard and write
a shard as soon as its last image arrives.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan_rt.atomic import write_bytes
from dcgan_rt.batch import Batch
from dcgan_rt.errors import UsageError
from dcgan_rt.images import encode_pngs
from dcgan_rt.label_files import LABELS_NAME, labels_csv
from dcgan_rt.labels import LabelRule
from dcgan_rt.provenance import PngText

FORMATS = ("png", "npy", "tar")
LAYOUTS = ("flat", "by-class")
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
    _NAME: re.Pattern  # the names of its files; group "unit" is the file unit's number

    def __init__(self, out_dir: Path, image_shape: tuple[int, int, int], z_dim: int, save_latents: bool,
                 job: tuple[int, int], rule: LabelRule | None = None, seed: int = 0, layout: str = "flat",
                 png_text: PngText | None = None):
        self.out_dir = Path(out_dir)
        self.png_text = png_text  # provenance chunks for every PNG (dcgan_rt.provenance)
        self.image_shape = tuple(image_shape)  # (H, W, C)
        self.z_dim = z_dim
        self.save_latents = save_latents
        self.job = job  # the whole job's [start, end): shards at its edges hold fewer images
        self.rule, self.seed = rule, seed  # a conditional model's labels: rule.labels(seed, indices)
        self.layout = layout

    def folders(self) -> list[Path]:
        """Every folder this writer puts image files in."""
        return [self.out_dir]

    def encode(self, batch: Batch, images: np.ndarray) -> list[bytes]:
        """PNG bytes of a batch, each with its provenance chunks (index, and label by name)."""
        if self.png_text is None:
            return encode_pngs(images)
        labels = None if batch.labels is None or self.rule is None else self.rule.texts(batch.labels)
        return encode_pngs(images, text=self.png_text.for_batch(batch.indices, labels),
                           common_text=self.png_text.constant)

    def pending(self, start: int, end: int, verify: bool = True) -> list[tuple[int, int]]:
        """Index ranges in [start, end) whose files are missing (or, with verify, damaged)."""
        raise NotImplementedError

    @classmethod
    def owns(cls, name: str) -> int | None:
        """The first index of the file unit `name` belongs to, or None if it is not ours."""
        m = cls._NAME.match(name)
        return int(m["unit"]) * cls.unit if m else None

    def write_batch(self, batch: Batch, images: np.ndarray) -> int:
        """Write (or stage) one batch's images (uint8 (n, H, W, C)); returns bytes written to disk."""
        raise NotImplementedError

    def _latents(self, batch: Batch) -> np.ndarray | None:
        return batch.z if self.save_latents else None

    def unfinished(self) -> int:
        """Images staged for shards that never completed (0 after a full run)."""
        return 0

    def finalize(self, start: int, end: int) -> None:
        """After the whole job is done (e.g. the npy index)."""

    def read(self, indices) -> np.ndarray:
        """uint8 (n, H, W, C) images at these global indices, from disk."""
        raise NotImplementedError

    def discard_unfinished(self) -> None:
        """After a failed or interrupted run: drop the partly gathered shards (and their temp files)."""

    def remove_temps(self, start: int, end: int) -> int:
        """Delete temp files a killed run left for the files of indices [start, end)."""
        removed = 0
        for entry in (e for folder in self.folders() if folder.is_dir() for e in os.scandir(folder)):
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
    _NAME = re.compile(r"^(?P<unit>\d{9,})\.(png|npy)$")

    def folders(self) -> list[Path]:
        if self.layout == "by-class":
            return [self.out_dir / name for name in self.rule.names]
        return [self.out_dir]

    def path(self, i: int, suffix: str = ".png", label=None) -> Path:
        if self.layout == "by-class":
            if label is None:
                label = self.rule.labels(self.seed, [i])[0]
            return self.out_dir / self.rule.names[int(label)] / f"{index_name(i)}{suffix}"
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
        for entry in (e for folder in self.folders() if folder.is_dir() for e in os.scandir(folder)):
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

    def write_batch(self, batch: Batch, images: np.ndarray) -> int:
        written, latents = 0, self._latents(batch)
        if self.layout == "by-class":
            for folder in self.folders():
                folder.mkdir(exist_ok=True)
        for k, (i, data) in enumerate(zip(batch.indices, self.encode(batch, images))):
            label = None if batch.labels is None else batch.labels[k]
            if latents is not None:
                z = npy_bytes(latents[k])
                write_bytes(self.path(int(i), ".npy", label), z, fsync=False)
                written += len(z)
            write_bytes(self.path(int(i), ".png", label), data, fsync=False)  # the PNG last: it marks the index done
            written += len(data)
        return written

    def finalize(self, start: int, end: int) -> None:
        if self.rule is not None:
            write_bytes(self.out_dir / LABELS_NAME, labels_csv(self.rule, self.seed, start, end))

    def read(self, indices) -> np.ndarray:
        out = []
        for i in indices:
            with Image.open(self.path(int(i))) as im:
                out.append(as_hwc(np.asarray(im)))
        return np.stack(out)


def writer_classes() -> dict[str, type[Writer]]:
    """{format: Writer class}; the shard formats live in dcgan_rt.shard_writers."""
    from dcgan_rt.shard_writers import NpyWriter, TarWriter

    return {"png": PngWriter, "npy": NpyWriter, "tar": TarWriter}


def make_writer(fmt: str, out_dir: Path, image_shape, z_dim: int, save_latents: bool,
                job: tuple[int, int], rule: LabelRule | None = None, seed: int = 0, layout: str = "flat",
                png_text: PngText | None = None) -> Writer:
    return writer_classes()[check_format(fmt)](out_dir, image_shape, z_dim, save_latents, job, rule, seed, layout,
                                               png_text)


def file_span(name: str) -> tuple[int, int] | None:
    """The index range of a file any format writes ('000000012.png' -> (12, 13)), else None."""
    for cls in writer_classes().values():
        first = cls.owns(name)
        if first is not None:
            return first, first + cls.unit
    return None


def as_hwc(a: np.ndarray) -> np.ndarray:
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
