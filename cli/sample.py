"""`dcgan-rt sample` (a grid of images) and `dcgan-rt interpolate` (a looping GIF walk).

CLI tier: parses options and calls dcgan_rt.sampling; backends load lazily, so an
ONNX model never imports torch here either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcgan_rt.cli.common import console, handle_errors

_MODEL_HELP = "Run directory, generator.safetensors, .onnx or .engine file."


def _backend(model: str, backend: str):
    from dcgan_rt.backends import select_backend

    chosen = select_backend(model, backend)
    console.print(f"backend: {chosen.describe()}; {chosen.reason}", highlight=False, soft_wrap=True, markup=False)
    return chosen


@handle_errors
def sample(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Grid image to write (.png).", show_default=False)],
    grid: Annotated[str, typer.Option(help="COLSxROWS images.")] = "8x8",
    seed: Annotated[int, typer.Option(help="Seed: the grid shows images 0.. of this seed, as generate "
                                           "writes them.")] = 0,
    backend: Annotated[str, typer.Option(help="auto | tensorrt | onnxruntime | openvino | torch.")] = "auto",
    scale: Annotated[int, typer.Option(help="Enlarge each pixel this many times (nearest neighbour).")] = 1,
) -> None:
    """Write a grid of images 0..COLS*ROWS-1 of one seed."""
    from dcgan_rt.errors import UsageError
    from dcgan_rt.latents import MAX_SEED
    from dcgan_rt.sampling import check_scale, grid_format, parse_grid, sample_grid

    cols, rows = parse_grid(grid)
    grid_format(out)
    check_scale(scale)
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer in 0..{MAX_SEED}, got {seed}")
    with _backend(model, backend) as chosen:
        path = sample_grid(chosen, seed, cols, rows, out, scale)
    console.print(f"wrote {path} ({cols}x{rows} images, seed {seed})", highlight=False, soft_wrap=True, markup=False)


@handle_errors
def interpolate(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Animated GIF to write (.gif).", show_default=False)],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; the walk visits image 0 of each, "
                                            "then loops.")] = "1,2,3",
    frames: Annotated[int, typer.Option(help="Frames between one seed and the next.")] = 32,
    backend: Annotated[str, typer.Option(help="auto | tensorrt | onnxruntime | openvino | torch.")] = "auto",
    scale: Annotated[int, typer.Option(help="Enlarge each pixel this many times (nearest neighbour).")] = 1,
) -> None:
    """Write a looping GIF that walks along great circles (slerp) between seeds' latents."""
    from dcgan_rt.sampling import check_gif_path, check_scale, interpolation_gif, parse_seeds, walk_latents

    seed_list = parse_seeds(seeds)
    walk_latents(seed_list, frames, 1)  # checks --frames before the model loads
    check_gif_path(out)
    check_scale(scale)
    with _backend(model, backend) as chosen:
        path = interpolation_gif(chosen, seed_list, frames, out, scale)
    console.print(f"wrote {path} ({len(seed_list) * frames} frames through seeds {seeds})",
                  highlight=False, soft_wrap=True, markup=False)
