"""Decoding a folder once: a memory-mapped cache of its decoded uint8 images.

Training tier (numpy, torch). The first run on a folder decodes it (centre crop, resize:
folders.decode_into) straight into a file, cache_root()/decoded/<name>-<R>px-<C>ch-<key>/
images.u8, with meta.json beside it; later runs map that file (copy-on-write np.memmap)
and start training at once. The key is a SHA-256 of every listed file's path, size and
mtime plus the resolution, channels and crop, so a folder with a file added, removed,
replaced or touched gets a new key and is decoded again (its old entry is removed).

Only one copy of the data set is ever in memory, and it is the page cache of that file:
no list of decoded images beside a stacked copy. An entry is built in a temporary folder
and renamed into place once complete, so a crash never leaves a cache that looks whole;
an flock makes concurrent runs on one machine (torchrun ranks) decode once and share it.
Where the cache cannot be written (no space, read-only) the images are decoded in memory,
with one notice. DCGAN_RT_DATA_CACHE=0 turns the cache off.

`listing_digest` is the folder's public identity: a SHA-256 of its files' relative names
and sizes, the same on every machine holding the same files (the model card's
`dataset_digest`; the folder's absolute path never leaves the run directory).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from dcgan_rt.atomic import write_json
from dcgan_rt.cache import cache_dir
from dcgan_rt.errors import DcganRtError
from dcgan_rt.lock import exclusive_lock
from dcgan_rt.train.folders import DecodedFiles, decode_files, decode_into, scan_images

CACHE_KIND_DIR = "decoded"
IMAGES_FILE, META_FILE = "images.u8", "meta.json"
FORMAT_VERSION = 1  # bump when decoding changes (crop, filter, colour rule): old entries stop matching


@dataclass(frozen=True)
class FolderListing:
    """The image files under a folder, with the size and mtime each had when listed."""

    folder: Path
    files: list[Path]
    sizes: list[int]  # -1: the file could not be stat'ed (a dangling link)
    mtimes_ns: list[int]

    @classmethod
    def scan(cls, folder: Path) -> "FolderListing":
        """The images under `folder` (train.folders.scan_images: its order and rules)."""
        scanned = scan_images(folder)
        return cls(Path(folder), [path for path, _ in scanned], [st.st_size if st else -1 for _, st in scanned],
                   [st.st_mtime_ns if st else -1 for _, st in scanned])

    def relative_names(self) -> list[str]:
        return [_relative(path, self.folder) for path in self.files]


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:  # not below the folder (an explicit file list): its own name
        return path.name


def listing_digest(listing: FolderListing) -> str:
    """SHA-256 hex of the sorted (relative name, size) pairs: where the folder lives, when
    its files were copied and on which machine do not change it; renaming, adding,
    removing or resizing a file does."""
    h = hashlib.sha256()
    for name, size in sorted(zip(listing.relative_names(), listing.sizes)):
        h.update(f"{name}\t{size}\n".encode())
    return h.hexdigest()


def cache_key(listing: FolderListing, img_resolution: int, img_channels: int, crop: int | None) -> str:
    h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, "img_resolution": img_resolution,
                                   "img_channels": img_channels, "crop": crop}, sort_keys=True).encode())
    for path, size, mtime in zip(listing.files, listing.sizes, listing.mtimes_ns):
        h.update(f"{os.path.abspath(path)}\t{size}\t{mtime}\n".encode())
    return h.hexdigest()


def enabled() -> bool:
    return os.environ.get("DCGAN_RT_DATA_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def entry_name(folder: Path, img_resolution: int, img_channels: int, key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(os.path.abspath(folder)).name).strip("._-") or "data"
    return f"{slug[:40]}-{img_resolution}px-{img_channels}ch-{key[:16]}"


def decode_cached(listing: FolderListing, img_resolution: int, img_channels: int, crop: int | None,
                  say: Callable[[str], None] = lambda m: None) -> DecodedFiles:
    """The decoded images of `listing`: mapped from the cache when an entry matches, else
    decoded once into a new entry (in memory, with a notice through `say`, when the cache
    cannot be written)."""
    args = (img_resolution, img_channels, crop)
    if not enabled() or not listing.files:  # an empty folder: decode_files says what to do
        return decode_files(listing.files, *args, listing.folder)
    key = cache_key(listing, *args)
    try:
        root = cache_dir(CACHE_KIND_DIR)
    except DcganRtError as exc:
        say(f"{exc}; decoding {listing.folder} in memory this time")
        return decode_files(listing.files, *args, listing.folder)
    entry = root / entry_name(listing.folder, img_resolution, img_channels, key)
    found = open_entry(entry, key, listing)
    if found is not None:
        return found
    with _locked(root / f".{entry.name}.lock"):
        found = open_entry(entry, key, listing)  # another process may have built it meanwhile
        if found is not None:
            return found
        try:
            _build(entry, key, listing, *args)
        except _CannotWrite as exc:
            say(f"cannot keep the decoded images of {listing.folder} in the cache ({exc}): decoding in memory; "
                "free space (dcgan-rt cache clear --kind datasets) or set DCGAN_RT_CACHE to a roomier folder")
            return decode_files(listing.files, *args, listing.folder)
    _remove_stale(root, entry, listing, *args)
    found = open_entry(entry, key, listing)
    if found is None:  # written and renamed just now, so only a vanished disk gets here
        raise DcganRtError(f"the decoded-image cache {entry} could not be read back: clear it with "
                           "dcgan-rt cache clear --kind datasets")
    return found


def open_entry(entry: Path, key: str, listing: FolderListing) -> DecodedFiles | None:
    """The entry's images mapped copy-on-write (writes stay private to this process), or
    None when it is missing, for another key, or not whole."""
    try:
        meta = json.loads((entry / META_FILE).read_text())
        shape = tuple(int(n) for n in meta["shape"])
        if meta.get("key") != key or len(shape) != 4 or meta.get("num_files") != len(listing.files):
            return None
        if (entry / IMAGES_FILE).stat().st_size != math.prod(shape):
            return None
        images = np.memmap(entry / IMAGES_FILE, dtype=np.uint8, mode="c", shape=shape)
        skipped = set(int(i) for i in meta["skipped"])
        num_colour = int(meta["num_colour"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kept = [i for i in range(len(listing.files)) if i not in skipped]
    if len(kept) != shape[0]:
        return None
    return DecodedFiles(torch.from_numpy(images), kept, [str(listing.files[i]) for i in sorted(skipped)], num_colour)


class _CannotWrite(Exception):
    """The cache folder has no room (or no permission) for this entry."""


def _build(entry: Path, key: str, listing: FolderListing, img_resolution: int, img_channels: int,
           crop: int | None) -> None:
    for stale in entry.parent.glob(f".{entry.name}.*.tmp"):  # left by a killed run; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    shape = (len(listing.files), img_channels, img_resolution, img_resolution)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    except OSError as exc:
        raise _CannotWrite(exc.strerror or str(exc)) from None
    try:
        path = tmp / IMAGES_FILE
        try:
            with open(path, "wb") as fh:
                # Reserve the blocks now: a memory-mapped write that finds the disk full is SIGBUS, not an error.
                os.posix_fallocate(fh.fileno(), 0, math.prod(shape))
        except OSError as exc:
            raise _CannotWrite(f"{exc.strerror or exc}, {math.prod(shape) / 2**20:.0f} MiB needed") from None
        images = np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)
        kept, _, num_colour = decode_into(images, listing.files, img_resolution, img_channels, crop,
                                                listing.folder)
        images.flush()
        del images
        row = math.prod(shape[1:])
        os.truncate(path, len(kept) * row)
        kept_set = set(kept)
        write_json(tmp / META_FILE, {
            "format": FORMAT_VERSION, "key": key, "folder": str(os.path.abspath(listing.folder)),
            "shape": [len(kept), *shape[1:]], "num_files": len(listing.files), "num_colour": num_colour,
            "skipped": [i for i in range(len(listing.files)) if i not in kept_set], "crop": crop,
        })
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        if entry.exists():  # a damaged entry for this key: open_entry refused it
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(root: Path, entry: Path, listing: FolderListing, img_resolution: int, img_channels: int,
                  crop: int | None) -> None:
    """Drop the entries this folder had before it changed (same folder, shape and crop)."""
    folder = str(os.path.abspath(listing.folder))
    prefix = entry.name[:-16]
    for other in root.glob(f"{glob.escape(prefix)}*"):
        if other == entry or not other.is_dir():
            continue
        try:
            meta = json.loads((other / META_FILE).read_text())
        except (OSError, ValueError):
            continue
        if meta.get("folder") == folder and meta.get("crop") == crop and meta.get("shape", [0])[1:] == [
                img_channels, img_resolution, img_resolution]:
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # a read-only cache: _build will say so
            stack.enter_context(exclusive_lock(path))
        yield
