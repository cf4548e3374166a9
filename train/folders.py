"""Reading image files: finding them in a folder, cropping, resizing, telling gray from colour.

Training tier (numpy, Pillow, torch). Every source made of files (a folder, CelebA,
the ORL faces) goes through `decode_files`, so they share one crop and one resize:
a centred square (the largest one, or `crop` pixels wide), then bicubic to the
resolution. `list_images` reads each real file once: a folder that links to itself
(`faces/self -> .`) or two links to one photo add nothing.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import DataError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# An image is in colour when more than 2 % of a 48 x 48 sample of its pixels have channels
# more than 12 levels apart: a gray photo saved as RGB JPEG stays within a level or two.
COLOUR_SAMPLE, COLOUR_SPREAD, COLOUR_SHARE = 48, 12, 0.02


class CropTooLarge(UsageError):
    """--crop asks for a square wider than an image."""


@dataclass
class DecodedFiles:
    images: torch.Tensor  # (N, C, R, R) uint8, in the order of `kept`
    kept: list[int]  # indices into the file list of the images that decoded
    skipped: list[str]  # files that could not be read
    num_colour: int  # decoded images whose pixels are not all gray


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Every file with one of `suffixes` below `folder` (recursive, hidden entries skipped), in
    a stable order. Directory links are followed, but never into a folder already read, and a
    file reached by several paths is listed once (at the first path in that order)."""
    return [path for path, _ in scan_images(folder, suffixes)]


def scan_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[tuple[Path, os.stat_result | None]]:
    """list_images with the stat each file had when listed (None: a dangling link), which the
    decoded cache's key needs: one stat a file, not two, on a 200,000-photo folder."""
    found, seen_dirs, seen_files = [], set(), set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(tuple(suffixes)):
                continue
            path = Path(dirpath) / name
            try:
                fst = path.stat()
            except OSError:  # a dangling link: listed, so it is counted as unreadable
                found.append((path, None))
                continue
            if (fst.st_dev, fst.st_ino) not in seen_files:
                seen_files.add((fst.st_dev, fst.st_ino))
                found.append((path, fst))
    return found


def crop_box(width: int, height: int, crop: int | None) -> tuple[int, int, int, int]:
    """The centred square to cut: `crop` pixels wide, or the largest one when crop is None or 0."""
    side = min(width, height) if not crop else crop
    if side > min(width, height):
        raise CropTooLarge(f"--crop {crop} is wider than an image of {width}x{height}: pass --crop "
                           f"{min(width, height)} or less (0: the largest centred square)")
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def is_colour(im) -> bool:
    """Whether a Pillow image holds colour, not gray pixels in an RGB file."""
    if im.mode in GRAY_MODES:
        return False
    from PIL import Image

    sample = np.asarray(im.resize((COLOUR_SAMPLE, COLOUR_SAMPLE), Image.Resampling.NEAREST).convert("RGB"))
    spread = sample.max(axis=-1).astype(np.int16) - sample.min(axis=-1)
    return bool((spread > COLOUR_SPREAD).mean() > COLOUR_SHARE)


def read_image(path: Path, img_resolution: int, img_channels: int, crop: int | None = None) -> tuple[np.ndarray, bool]:
    """One file -> ((C, R, R) uint8, whether the file is in colour): centre-crop, then resize.
    Colour files read with img_channels 1 become their luminance (Pillow's ITU-R 601 "L")."""
    from PIL import Image

    with Image.open(path) as im:
        colour = is_colour(im)
        im = im.convert("L" if img_channels == 1 else "RGB")
        box = crop_box(*im.size, crop)
        im = im.crop(box)
        if box[2] - box[0] != img_resolution:
            im = im.resize((img_resolution, img_resolution), Image.Resampling.BICUBIC, reducing_gap=3.0)
        arr = np.asarray(im, dtype=np.uint8)
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), colour


def decode_files(files: Sequence[Path], img_resolution: int, img_channels: int, crop: int | None,
                 where: Path) -> DecodedFiles:
    """Decode `files` (unreadable ones skipped) in memory; `where` names the folder in messages."""
    out = np.empty((len(files), img_channels, img_resolution, img_resolution), dtype=np.uint8)
    kept, skipped, num_colour = decode_into(out, files, img_resolution, img_channels, crop, where)
    return DecodedFiles(torch.from_numpy(out[:len(kept)]), kept, skipped, num_colour)


def decode_into(out: np.ndarray, files: Sequence[Path], img_resolution: int, img_channels: int, crop: int | None,
                where: Path) -> tuple[list[int], list[str], int]:
    """Decode `files` straight into `out` ((len(files), C, R, R) uint8, e.g. a memory-mapped
    file), the readable ones packed at the front in order: one copy of the data set, never a
    list of images plus a stacked one. Returns (kept indices, skipped paths, colour count)."""
    if not files:
        raise DataError(f"no images ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) found under {where}: "
                        "point --data at a folder that holds some")

    def decode(i: int) -> bool | None:
        try:
            out[i], colour = read_image(files[i], img_resolution, img_channels, crop)
            return colour
        except CropTooLarge:
            raise
        except Exception:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
            return None

    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, usable_cores())) as pool:
        colours = list(pool.map(decode, range(len(files))))
    kept = [i for i, colour in enumerate(colours) if colour is not None]
    if not kept:
        raise DataError(f"none of the {len(files)} image files under {where} could be read: check that they are "
                        "valid jpg/png/webp images")
    for row, i in enumerate(kept):  # a row only moves toward the front, past rows already read
        if row != i:
            out[row] = out[i]
    return kept, [str(files[i]) for i, colour in enumerate(colours) if colour is None], sum(bool(colours[i]) for i in kept)
