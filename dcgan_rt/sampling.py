"""Looking at a model: a grid of samples, and a spherical walk between seeds' latents.

Core tier (numpy + Pillow; the backend brings its runtime). The grid shows images
0..R*C-1 of a seed, exactly the images `generate --seed S` writes first. The walk
goes from z(s1, 0) to z(s2, 0) to ... and back to z(s1, 0) along great circles
(slerp, as in White, "Sampling Generative Networks", 2016), so a looping GIF has
no jump; its first frame is image 0 of the first seed.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan_rt.atomic import write_bytes
from dcgan_rt.backends import Backend
from dcgan_rt.batch import Batch
from dcgan_rt.errors import UsageError
from dcgan_rt.images import make_grid, to_pil
from dcgan_rt.labels import LabelRequest, make_rule
from dcgan_rt.latents import MAX_SEED, latent_range, latents

GIF_FRAME_MS = 40


def parse_grid(text: str) -> tuple[int, int]:
    """'8x8' -> (columns, rows)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UsageError(f"--grid must look like COLSxROWS with positive numbers, e.g. 8x8, got {text!r}")
    cols, rows = int(m.group(1)), int(m.group(2))
    if cols * rows > 4096:
        raise UsageError(f"--grid {text} asks for {cols * rows} images; at most 4096 fit in one grid")
    return cols, rows


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, e.g. 1,2,3, got {text!r}") from None
    if len(seeds) < 2:
        raise UsageError(f"--seeds needs at least two seeds to walk between, got {text!r}")
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise UsageError(f"--seeds must be integers in 0..{MAX_SEED}, got {text!r}")
    return seeds


def check_scale(scale: int) -> None:
    if not 1 <= scale <= 16:
        raise UsageError(f"--scale must be between 1 and 16, got {scale}")


def grid_format(out: Path) -> str:
    """The Pillow format for a grid path ('.png' -> 'PNG'); UsageError for an unknown suffix."""
    fmt = Image.registered_extensions().get(Path(out).suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {out}: unknown image type {Path(out).suffix or '(none)'}; use .png")
    check_out_file(out)
    return fmt


def check_gif_path(out: Path) -> None:
    if Path(out).suffix.lower() != ".gif":
        raise UsageError(f"--out {out}: interpolate writes an animated GIF, so --out must end in .gif")
    check_out_file(out)


def check_out_file(out: Path) -> None:
    """Refuse an --out file that cannot be written, before the model is loaded and run."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name, e.g. {out / 'out'}{out.suffix}")
    folder = out.parent
    if not folder.is_dir():
        why = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"--out {out}: {folder} {why}; create the folder first or choose another --out")


def sample_grid(backend: Backend, seed: int, cols: int, rows: int, out: str | Path, scale: int = 1) -> Path:
    """Images 0..cols*rows-1 of `seed` as one grid image (format from the suffix)."""
    out = Path(out)
    check_scale(scale)
    fmt = grid_format(out)
    indices = np.arange(cols * rows, dtype=np.int64)
    inputs = _with_default_labels(backend, seed, indices, latent_range(seed, 0, cols * rows, backend.z_dim))
    batch = max(1, min(256, backend.max_batch or 256))
    images = np.concatenate([backend.images(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])
    buf = io.BytesIO()
    to_pil(make_grid(images, cols), scale).save(buf, format=fmt)
    write_bytes(out, buf.getvalue())
    return out


def _with_default_labels(backend: Backend, seed: int, indices: np.ndarray, z: np.ndarray) -> Batch:
    """The batch `generate` would make for these indices: for a conditional model, with the
    default label rule's y(seed, i) (dcgan_rt.labels), so the grid shows generate's images."""
    rule = make_rule(backend.card, LabelRequest(), 0, 1)
    return Batch(indices, z, None if rule is None else rule.labels(seed, indices))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1), in float64, returned as float32."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64 / np.linalg.norm(a64), b64 / np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: fall back to a straight line
        return ((1.0 - t) * a64 + t * b64).astype(np.float32)
    s = np.sin(omega)
    return (np.sin((1.0 - t) * omega) / s * a64 + np.sin(t * omega) / s * b64).astype(np.float32)


def walk_latents(seeds: list[int], frames: int, z_dim: int) -> np.ndarray:
    """frames per leg, legs s1->s2->...->s1: (len(seeds) * frames, z_dim)."""
    if frames < 1:
        raise UsageError(f"--frames must be a positive integer, got {frames}")
    keys = [latents(s, [0], z_dim)[0] for s in seeds]
    legs = zip(keys, keys[1:] + keys[:1])
    return np.stack([slerp(a, b, j / frames) for a, b in legs for j in range(frames)])


def interpolation_gif(backend: Backend, seeds: list[int], frames: int, out: str | Path, scale: int = 1) -> Path:
    out = Path(out)
    check_scale(scale)
    check_gif_path(out)
    z = walk_latents(seeds, frames, backend.z_dim)
    # a conditional model walks with the label of image 0 of the first seed (class 0 by default)
    inputs = _with_default_labels(backend, seeds[0], np.zeros(len(z), dtype=np.int64), z)
    batch = max(1, min(256, backend.max_batch or 256))
    images = np.concatenate([backend.images(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])
    pictures = [to_pil(im, scale) for im in images]
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=GIF_FRAME_MS, loop=0,
                     optimize=False, disposal=1)
    write_bytes(out, buf.getvalue())
    return out
