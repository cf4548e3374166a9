"""Turning generator outputs into pictures: uint8 conversion, grids and PNG bytes.

Core tier (numpy + Pillow). Every path that makes a uint8 image from a float
generator output goes through `to_uint8`, which applies the one rounding rule of
dcgan_rt.pixels (the uint8 ONNX variant computes the same thing in its graph):

    uint8 = clip(round_half_to_even((x + 1) * 127.5), 0, 255), in float32, NCHW -> NHWC
"""

from __future__ import annotations

import struct
import zlib
from typing import Sequence

import numpy as np
from PIL import Image

from dcgan_rt.errors import NumericalError, UsageError
from dcgan_rt.pixels import to_uint8_nhwc
from dcgan_rt.provenance import png_chunk as _chunk

# zlib level 1 with PNG filter "None": on MNIST-like 28x28 digits the files are 5%
# bigger than at level 6 and 5% smaller than Pillow's own level-1 output, and
# encoding a small image is 4-6x faster than Pillow's (which spends most of its
# time in Python setting up the plugin, not in zlib).
PNG_COMPRESS_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C) by dcgan_rt.pixels' rule,
    refusing NaN and inf (which would otherwise become silent black or white pixels)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise UsageError(f"expected images of shape (N, C, H, W), got {x.shape}")
    if not (np.isfinite(x.max()) and np.isfinite(x.min())):  # NaN propagates through both; -inf shows in min
        raise NumericalError("the generator produced NaN or infinite values; the model weights are broken "
                             "(retrain or re-export)")
    return to_uint8_nhwc(x)


def to_pil(image: np.ndarray, scale: int = 1) -> Image.Image:
    """One uint8 (H, W, C) image, C = 1 or 3, as a Pillow image (mode L or RGB),
    enlarged `scale` times with nearest-neighbour (pixels stay sharp squares)."""
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
        raise UsageError(f"expected a uint8 (H, W, 1|3) image, got {image.dtype} {image.shape}")
    im = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    return im if scale == 1 else im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def encode_pngs(images: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL,
                text: Sequence[bytes] | None = None, common_text: bytes = b"") -> list[bytes]:
    """PNG bytes of each uint8 (N, H, W, C) image, C = 1 (grayscale) or 3 (RGB), 8 bits.

    A minimal PNG writer (IHDR, one IDAT, IEND; every row filter type 0), vectorised
    over the batch; zlib releases the GIL while it deflates, so writer threads overlap.
    Ready-made ancillary chunks (dcgan_rt.provenance.PngText) go before the image data:
    `common_text` in every image, then `text[k]` in image k.
    """
    if images.ndim != 4 or images.shape[3] not in (1, 3) or images.dtype != np.uint8:
        raise UsageError(f"expected uint8 (N, H, W, 1|3) images, got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    header = _PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0))
    header += common_text
    end = _chunk(b"IEND", b"")
    raw = np.zeros((n, h, 1 + w * c), dtype=np.uint8)  # column 0: the row's filter type (0, None)
    raw[:, :, 1:] = images.reshape(n, h, w * c)
    text = [b""] * n if text is None else text
    return [b"".join((header, text[k], _chunk(b"IDAT", zlib.compress(raw[k].tobytes(), compress_level)), end))
            for k in range(n)]


def encode_png(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL, text: bytes = b"") -> bytes:
    """PNG bytes of one uint8 (H, W, C) image (with `text`: these ancillary chunks)."""
    if image.ndim != 3:
        raise UsageError(f"expected a uint8 (H, W, 1|3) image, got {image.dtype} {image.shape}")
    return encode_pngs(image[None], compress_level, common_text=text)[0]


def make_grid(images: np.ndarray, cols: int, pad: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images row by row into one (rows*(H+pad)+pad, ...) image."""
    n, h, w, c = images.shape
    if n == 0:
        raise UsageError("cannot make a grid of zero images")
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for k in range(n):
        r, col = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[k]
    return grid


def grid_tile(grid: np.ndarray, k: int, cols: int, h: int, w: int, pad: int = 2) -> np.ndarray:
    """Tile k of a grid made by make_grid (for reading a grid back)."""
    r, col = divmod(k, cols)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    return grid[y : y + h, x : x + w]
