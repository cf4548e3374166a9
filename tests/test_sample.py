"""`dcgan-rt sample` and `dcgan-rt interpolate`: the pictures show the images generate makes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import assert_clean_error, run_cli
from dcgan_rt.backends import select_backend
from dcgan_rt.images import grid_tile
from dcgan_rt.latents import latents
from dcgan_rt.sampling import slerp, walk_latents


def images_of(model, seed, indices):
    with select_backend(model) as b:
        return b.images(latents(seed, indices, b.z_dim))


def test_sample_grid_tiles_are_generate_images(tiny_onnx, tmp_path):
    out = tmp_path / "grid.png"
    run_cli("sample", tiny_onnx, "--out", out, "--grid", "4x3", "--seed", 9, check=True)
    with Image.open(out) as im:
        grid = np.asarray(im)[:, :, None]
    assert grid.shape == (3 * 18 + 2, 4 * 18 + 2, 1)  # 4 columns, 3 rows, 2 px apart
    expected = images_of(tiny_onnx, 9, range(12))
    for k in (0, 5, 11):
        assert np.array_equal(grid_tile(grid, k, cols=4, h=16, w=16), expected[k])


def test_interpolate_walks_seeds_and_loops(tiny_onnx, tmp_path):
    out = tmp_path / "walk.gif"
    run_cli("interpolate", tiny_onnx, "--out", out, "--seeds", "1,2,3", "--frames", 4, check=True)
    with Image.open(out) as gif:
        assert gif.n_frames == 12 and gif.size == (16, 16)
        first = np.asarray(gif.convert("L"))[:, :, None]
    assert np.array_equal(first, images_of(tiny_onnx, 1, [0])[0])

    z = walk_latents([1, 2, 3], 4, 16)
    assert np.array_equal(z[4], latents(2, [0], 16)[0]) and np.array_equal(z[8], latents(3, [0], 16)[0])
    # slerp keeps the norm of equal-norm endpoints (a straight line would shrink it)
    a, b = latents(1, [0], 16)[0], latents(2, [0], 16)[0]
    b = b / np.linalg.norm(b) * np.linalg.norm(a)
    assert np.isclose(np.linalg.norm(slerp(a, b, 0.5)), np.linalg.norm(a), rtol=1e-5)


@pytest.mark.parametrize("command, args, needle", [
    ("sample", ["--out", "g.png", "--grid", "8"], "--grid must look like"),
    ("sample", ["--out", "g.xyz"], "unknown image type"),
    ("interpolate", ["--out", "w.gif", "--seeds", "1"], "at least two seeds"),
    ("interpolate", ["--out", "w.png"], "must end in .gif"),
])
def test_bad_options_are_one_line(tiny_onnx, tmp_path, command, args, needle):
    args = [str(tmp_path / a) if a.startswith(("g.", "w.")) else a for a in args]
    proc = run_cli(command, tiny_onnx, *args)
    assert_clean_error(proc, 2, needle)
    assert not list(tmp_path.iterdir())
