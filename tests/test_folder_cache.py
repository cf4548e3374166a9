"""A folder is decoded once: the memory-mapped decoded-image cache, its key, its crash safety.

Tiny folders (a few dozen 40x50 images) with DCGAN_RT_CACHE pointed at a temporary
folder; the cache is read through load_dataset, as `train` and `evaluate` read it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_rt.train.data import load_dataset
from dcgan_rt.train.folders import decode_files, list_images


def _folder(path: Path, n: int = 12, seed: int = 0) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path / f"{i:03d}.png")
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("DCGAN_RT_CACHE", str(root))
    monkeypatch.delenv("DCGAN_RT_DATA_CACHE", raising=False)
    return root


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "decoded").iterdir() if p.is_dir() and not p.name.startswith("."))


def _mapped_file(images: torch.Tensor) -> str | None:
    """The file whose mapping holds the tensor's memory (Linux /proc/self/maps), or None."""
    address = images.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) == 6 and fields[5].startswith("/") else None
    return None


def _garble_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    path.write_bytes(b"\0" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_second_load_maps_the_cache_instead_of_decoding(cache, tmp_path):
    folder = _folder(tmp_path / "photos")
    first = load_dataset(str(folder), 16, 3, crop=0)
    in_memory = decode_files(list_images(folder), 16, 3, 0, folder)
    assert torch.equal(first.images, in_memory.images) and first.images.shape == (12, 3, 16, 16)
    [entry] = [e for e in _entries(cache) if e.name.startswith("photos-16px")]
    assert (entry / "images.u8").stat().st_size == 12 * 3 * 16 * 16
    # Another resolution or crop is another entry.
    assert load_dataset(str(folder), 32, 3, crop=0).images.shape == (12, 3, 32, 32)
    assert load_dataset(str(folder), 16, 3, crop=36).images.shape == (12, 3, 16, 16)
    assert len(_entries(cache)) == 3

    # Same names, sizes and mtimes: the cache is trusted and nothing is decoded (the garbled
    # bytes would fail to decode); that is the documented key.
    _garble_keeping_size_and_mtime(folder / "003.png")
    again = load_dataset(str(folder), 16, 3, crop=0)
    assert _mapped_file(again.images) == str(entry / "images.u8") and torch.equal(again.images, first.images)
    again.images[0] = 0  # copy-on-write: a write in one run never reaches the cache file
    assert torch.equal(load_dataset(str(folder), 16, 3, crop=0).images, first.images)



def test_a_changed_folder_is_decoded_again_and_its_old_entry_dropped(cache, tmp_path):
    folder = _folder(tmp_path / "photos")
    load_dataset(str(folder), 16, 3, crop=0)
    [old] = _entries(cache)

    _garble_keeping_size_and_mtime(folder / "003.png")
    os.utime(folder / "003.png")  # touched: a new mtime, so decoded again (and now unreadable)
    notes = []
    data = load_dataset(str(folder), 16, 3, crop=0, warn=notes.append)
    assert data.images.shape[0] == 11 and "skipped 1 unreadable image" in notes[0] and "003.png" in notes[0]
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(folder / "new.png")
    grown = load_dataset(str(folder), 16, 3, crop=0, warn=notes.append)
    assert grown.images.shape[0] == 12 and int(grown.images[-1].float().mean()) == 200
    assert len(notes) == 2 and "skipped 1" in notes[1]  # the skip is replayed from the cache's record
    [entry] = _entries(cache)
    assert entry != old and not old.exists()


def test_a_half_written_entry_is_never_used(cache, tmp_path):
    folder = _folder(tmp_path / "photos")
    good = load_dataset(str(folder), 16, 3, crop=0).images.clone()
    [entry] = _entries(cache)
    with open(entry / "images.u8", "r+b") as fh:  # a crash (or full disk) left it short
        fh.truncate(100)
    stale_tmp = entry.parent / f".{entry.name}.abc123.tmp"  # a killed run's temporary folder
    stale_tmp.mkdir()
    (stale_tmp / "images.u8").write_bytes(b"\1" * 10)
    assert torch.equal(load_dataset(str(folder), 16, 3, crop=0).images, good)
    assert (entry / "images.u8").stat().st_size == good.numel() and not stale_tmp.exists()
    (entry / "meta.json").write_text("{")  # and a torn record is rebuilt too
    assert torch.equal(load_dataset(str(folder), 16, 3, crop=0).images, good)
    assert json.loads((entry / "meta.json").read_text())["shape"] == [12, 3, 16, 16]


def test_without_a_writable_cache_the_folder_is_decoded_in_memory_with_one_notice(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "photos")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DCGAN_RT_CACHE", str(blocker))
    notes = []
    data = load_dataset(str(folder), 16, 3, crop=0, warn=notes.append)
    assert data.images.shape == (12, 3, 16, 16) and _mapped_file(data.images) is None
    assert len(notes) == 1 and "decoding" in notes[0] and "in memory" in notes[0]

    monkeypatch.setenv("DCGAN_RT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DCGAN_RT_DATA_CACHE", "0")  # turned off: nothing written
    assert load_dataset(str(folder), 16, 3, crop=0).images.shape == (12, 3, 16, 16)
    assert not (tmp_path / "cache" / "decoded").exists()


def test_the_listing_digest_names_the_files_not_where_they_are(cache, tmp_path):
    folder = _folder(tmp_path / "a" / "faces")
    (folder / "sub").mkdir()
    shutil.copy(folder / "000.png", folder / "sub" / "x.png")
    here = load_dataset(str(folder), 16, 3, crop=0)
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "faces")  # new mtimes, new absolute paths
    there = load_dataset(str(copy), 16, 3, crop=0)
    assert here.digest == there.digest and len(here.digest) == 64
    assert here.name == there.name == "faces" and here.path == folder and there.path == copy
    (copy / "sub" / "x.png").rename(copy / "sub" / "y.png")
    assert load_dataset(str(copy), 16, 3, crop=0).digest != here.digest
