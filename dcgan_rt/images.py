"""Turning generator outputs into pictures: uint8 conversion, grids and PNG bytes.

Core tier (numpy + Pillow). Every path that makes a uint8 image from a float
generator output goes through `to_uint8`, which applies the one rounding rule of
dcgan_rt.pixels (the uint8 ONNX variant computes the same thing in its graph):

    uint8 = clip(round_half_to_even((x + 1) * 127.5), 0, 255), in float32, NCHW -> NHWC
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from dcgan_rt.errors import NumericalError, UsageError
from dcgan_rt.pixels import to_uint8_nhwc

# zlib level 1: ~3x faster than Pillow's default 6 on small images, files ~10% bigger.
PNG_COMPRESS_LEVEL = 1


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C) by dcgan_rt.pixels' rule,
    refusing NaN (which would otherwise become silent black pixels)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise UsageError(f"expected images of shape (N, C, H, W), got {x.shape}")
    if np.isnan(x.max()):  # one reduction; NaN propagates through max
        raise NumericalError("the generator produced NaN values; the model weights are broken (retrain or re-export)")
    return to_uint8_nhwc(x)


def to_pil(image: np.ndarray) -> Image.Image:
    """One uint8 (H, W, C) image, C = 1 or 3, as a Pillow image (mode L or RGB)."""
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.dtype != np.uint8:
        raise UsageError(f"expected a uint8 (H, W, 1|3) image, got {image.dtype} {image.shape}")
    return Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)


def encode_png(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of one uint8 (H, W, C) image. Pillow releases the GIL while deflating."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


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
