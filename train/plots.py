"""Pictures of a run: sample grids, the progression strip and GIF, real vs generated, loss curves.

Training tier. Grids are uint8 arrays assembled with numpy and written with Pillow;
the loss curves use matplotlib's Agg backend (no display needed). Every file is
written atomically.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from dcgan_rt.atomic import write_bytes
from dcgan_rt.images import grid_tile, make_grid, to_pil


def _pil(images: np.ndarray, scale: int = 1, cols: int | None = None):
    """(N, C, H, W) uint8 -> one Pillow grid (dcgan_rt.images.make_grid), `cols` per row
    (default: as square as it goes), enlarged `scale` times."""
    return to_pil(make_grid(images.transpose(0, 2, 3, 1), cols or math.ceil(math.sqrt(len(images)))), scale)


def _png_bytes(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def display_scale(img_resolution: int) -> int:
    """Small images are upscaled (nearest neighbour) so a grid is readable on screen."""
    return max(1, 64 // img_resolution)


def save_grid(images: np.ndarray, path: Path, cols: int | None = None) -> None:
    """Write (N, C, H, W) uint8 images as one PNG grid."""
    write_bytes(path, _png_bytes(_pil(images, display_scale(images.shape[-1]), cols)))


def save_progression(grids: Sequence[np.ndarray], labels: Sequence[str], strip_path: Path, gif_path: Path,
                     seeds_shown: int = 8, max_columns: int = 12, max_frames: int = 40) -> None:
    """From per-epoch samples of the same fixed latents ((N, C, H, W) uint8 each):
    a strip with one row per latent and one column per epoch (at most max_columns,
    evenly spaced, always ending with the last), and an animated GIF of the full grids
    (at most max_frames of them, spaced the same way)."""
    from PIL import Image, ImageDraw

    if not grids:
        return
    def spaced(count: int) -> np.ndarray:
        return np.unique(np.linspace(0, len(grids) - 1, min(len(grids), count)).round().astype(int))

    picks = spaced(max_columns)
    res = grids[0].shape[-1]
    scale = display_scale(res)
    # columns = epochs: image [latent j, epoch k] at row j, column k
    stack = np.stack([grids[k][:seeds_shown] for k in picks], axis=1)  # (seeds, epochs, C, H, W)
    s, e = stack.shape[:2]
    strip = _pil(stack.reshape(s * e, *stack.shape[2:]), scale, cols=e)
    label_h = 14
    canvas = Image.new(strip.mode, (strip.width, strip.height + label_h), 0)
    canvas.paste(strip, (0, label_h))
    draw = ImageDraw.Draw(canvas)
    cell = (res + 2) * scale
    for col, k in enumerate(picks):
        draw.text((2 * scale + col * cell, 1), labels[k], fill=255 if canvas.mode == "L" else (255, 255, 255))
    write_bytes(strip_path, _png_bytes(canvas))

    frames = [_pil(g, scale).convert("P") if g.shape[1] == 3 else _pil(g, scale)
              for g in (grids[k] for k in spaced(max_frames))]
    durations = [400] * (len(frames) - 1) + [2000]  # linger on the final epoch
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    write_bytes(gif_path, buf.getvalue())


def save_real_vs_generated(real: np.ndarray, fake: np.ndarray, path: Path, cols: int = 8) -> None:
    """Two grids side by side, labelled "real" and "generated"."""
    from PIL import Image, ImageDraw

    scale = display_scale(real.shape[-1])
    left, right = _pil(real, scale, cols), _pil(fake, scale, cols)
    gap, label_h = 16, 16
    canvas = Image.new(left.mode, (left.width + gap + right.width, max(left.height, right.height) + label_h), 0)
    canvas.paste(left, (0, label_h))
    canvas.paste(right, (left.width + gap, label_h))
    draw = ImageDraw.Draw(canvas)
    white = 255 if canvas.mode == "L" else (255, 255, 255)
    draw.text((4, 2), "real", fill=white)
    draw.text((left.width + gap + 4, 2), "generated", fill=white)
    write_bytes(path, _png_bytes(canvas))


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return rows


def save_loss_curves(metrics_path: Path, path: Path) -> bool:
    """losses.png from metrics.jsonl: the losses (the InfoGAN code loss too when the run has a
    code), and D's mean outputs on real and fake."""
    rows = [r for r in read_metrics(metrics_path) if "loss_d" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    step = [r["step"] for r in rows]
    fig = Figure(figsize=(9, 6), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(step, [r["loss_d"] for r in rows], label="loss_D", lw=1)
    ax1.plot(step, [r["loss_g"] for r in rows], label="loss_G", lw=1)
    if any(r.get("loss_code") for r in rows):
        ax1.plot(step, [r.get("loss_code", 0.0) for r in rows], label="loss_code", lw=1)
    ax1.set_ylabel("loss")
    ax1.legend(loc="upper right")
    ax1.grid(alpha=0.3)
    ax2.plot(step, [r["d_real"] for r in rows], label="D(x)", lw=1)
    ax2.plot(step, [r["d_fake"] for r in rows], label="D(G(z))", lw=1)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean D output")
    ax2.legend(loc="upper right")
    ax2.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes(path, buf.getvalue())
    return True


def write_run_plots(run_dir: Path, data, opts) -> None:
    """A run's end-of-training pictures from its files: progression strip and GIF (from
    samples/epoch_*.png), real vs generated, loss curves. `data`: a TrainData, `opts`: TrainOptions."""
    import torch
    from PIL import Image

    grid_paths = sorted((run_dir / "samples").glob("epoch_*.png"))
    grids, labels = [], []
    for path in grid_paths:
        with Image.open(path) as im:
            arr = np.asarray(im)
        grids.append(cut_grid(arr, opts.img_resolution, opts.img_channels, opts.grid_size))
        labels.append(f"ep {int(path.stem.split('_')[1])}")
    if grids:
        save_progression(grids, labels, run_dir / "progress.png", run_dir / "progress.gif")
        n = min(64, opts.grid_size)
        real_idx = torch.randperm(data.num_images, generator=torch.Generator().manual_seed(opts.seed))[:n]
        save_real_vs_generated(data.images[real_idx].numpy(), grids[-1][:n], run_dir / "real_vs_generated.png")
    save_loss_curves(run_dir / "metrics.jsonl", run_dir / "losses.png")


def cut_grid(grid: np.ndarray, res: int, channels: int, n: int) -> np.ndarray:
    """Cut a saved sample grid back into (n, C, res, res) images (the inverse of save_grid)."""
    scale = display_scale(res)
    if grid.ndim == 2:
        grid = grid[..., None]
    grid = grid[::scale, ::scale, :channels]
    cols = int(math.sqrt(n)) or 1
    out = np.zeros((n, channels, res, res), dtype=np.uint8)
    for i in range(n):
        patch = grid_tile(grid, i, cols, res, res)
        if patch.shape[:2] == (res, res):
            out[i] = patch.transpose(2, 0, 1)
    return out
