"""The embedding examples reproduce `dcgan-rt generate` image for image (docs/embedding.md).

A tiny grayscale and a tiny RGB generator are exported with the real CLI
(`dcgan-rt export --uint8`), `dcgan-rt generate` writes the reference PNGs, then
examples/python, examples/node and examples/web (in headless Chromium) run on the same
model, seed and indices: uint8 variant identical, fp32 within one level. The conditional
models' cases are in test_examples_conditional.py; the shared fixtures in
examples_support.py. Where node or Chromium is missing those tests skip with the reason;
missing node_modules are installed with `npm ci` (ONNXRUNTIME_NODE_INSTALL=skip: no CUDA
download).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import TESTS
from examples_support import (
    COUNT, EXAMPLES, GRID, MODELS, RUN_BLOCKED, SEED, START, VARIANTS, assert_same_images, canvas_tiles, check_page,
    generate_ref, node, read_pngs,
)


@pytest.fixture(scope="session")
def references(exported, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """`dcgan-rt generate` PNGs for every (model, variant): the pixels the examples must match."""
    root = tmp_path_factory.mktemp("generate")
    refs = {(model, variant): root / f"{model}_{variant}" for model in MODELS for variant in VARIANTS}

    def generate(key):
        model, variant = key
        generate_ref(exported[model] / VARIANTS[variant], refs[key])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(generate, refs))
    return refs


JS_LATENTS = """
import { latents } from "./latents.js";
const [seed, start, count, zDim] = process.argv.slice(1).map(Number);
const z = latents(seed, start, count, zDim);
process.stdout.write(Buffer.from(z.buffer).toString("base64"));
"""


def js_latents(folder: Path, seed: int, start: int, count: int, z_dim: int) -> np.ndarray:
    proc = node("--input-type=module", "-e", JS_LATENTS, seed, start, count, z_dim, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return np.frombuffer(base64.b64decode(proc.stdout), dtype="<f4").reshape(count, z_dim)


def test_js_latents_equal_the_pinned_test_vectors(node_example):
    pinned = json.loads((TESTS / "data" / "latent_vectors.json").read_text())
    for v in pinned["vectors"]:
        z = js_latents(node_example, v["seed"], v["index"], 1, pinned["z_dim"])[0]
        assert [f"{w:08x}" for w in z.view("<u4")] == v["z_hex"], f"seed {v['seed']} index {v['index']}"


@pytest.mark.parametrize("seed, start", [(0, 0), (7, 123_456_789), (2**32 - 1, 2**32 - 400)])
def test_js_latents_equal_dcgan_rt_bit_for_bit(node_example, seed, start):
    from dcgan_rt.latents import latent_range

    want = latent_range(seed, start, 400, 100)  # 40,000 values, ~15% in the float64 tails
    got = js_latents(node_example, seed, start, 400, 100)
    mismatched = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert mismatched.size == 0, f"{mismatched.size} components differ, first at {mismatched[:5]}"


def _python_example():
    spec = importlib.util.spec_from_file_location("embed_example", EXAMPLES / "python" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed, start", [(0, 0), (42, 1234), (2**32 - 1, 2**32 - 2000)])
def test_python_example_latents_equal_dcgan_rt_bit_for_bit(seed, start):
    from dcgan_rt.latents import latent_range

    got = _python_example().latents(seed, start, 2000, 100)
    want = latent_range(seed, start, 2000, 100)
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("variant, tolerance", [("uint8", 0), ("fp32", 1)])
def test_python_example_writes_generates_pixels(exported, references, tmp_path, model, variant, tolerance):
    out = tmp_path / "py"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKED, str(EXAMPLES / "python" / "generate.py"),
         str(exported[model] / VARIANTS[variant]), "-n", str(COUNT), "--out", str(out),
         "--seed", str(SEED), "--start", str(START), "--batch-size", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {COUNT} images" in proc.stdout
    assert_same_images(out, references[model, variant], tolerance)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("variant, tolerance", [("uint8", 0), ("fp32", 1)])
def test_node_example_writes_generates_pixels(node_example, exported, references, tmp_path, model, variant,
                                              tolerance):
    out = tmp_path / "node"
    proc = node("generate.js", exported[model] / VARIANTS[variant], "-n", COUNT, "--out", out,
                "--seed", SEED, "--start", START, "--batch-size", 5, cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {COUNT} images" in proc.stdout
    assert_same_images(out, references[model, variant], tolerance)


def test_node_example_refuses_bad_input_with_one_line(node_example, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    plain = tmp_path / "plain.onnx"  # a valid ONNX model that is not a dcgan-rt generator
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["images"])], "g",
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), plain)
    cases = [
        (["generate.js", plain, "-n", 1, "--out", tmp_path / "a"], 1, "not a dcgan-rt generator"),
        (["generate.js", tmp_path / "missing.onnx", "-n", 1, "--out", tmp_path / "b"], 2, "not found"),
        (["generate.js", plain, "-n", "ten", "--out", tmp_path / "c"], 2, "-n must be a non-negative integer"),
        (["generate.js", plain, "-n", 1, "--out", tmp_path / "d", "--seed", 2**32], 2, "--seed must be in 0..4294967295"),
    ]
    for args, code, needle in cases:
        proc = node(*args, cwd=node_example)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "a").exists(), "nothing is written for a model that is not a generator"

@pytest.mark.parametrize("model, opened_with", [("gray", "file picker"), ("rgb", "?model=URL")])
def test_web_page_draws_generates_pixels_for_a_typed_seed(web_example, chromium, site, exported, references, tmp_path,
                                                          model, opened_with):
    if opened_with == "file picker":
        result = check_page(web_example, chromium, f"{site}/web/?grid={GRID}", tmp_path,
                            "--file", exported[model] / VARIANTS["uint8"])
        # Before the file is picked the page looks for model.onnx beside it; this site has none.
        problems = [p for p in result["problems"] if "404" not in p]
        assert result["card"]["source"] == "generator.uint8.onnx"
    else:
        result = check_page(web_example, chromium, f"{site}/web/?model=/{model}.generator.uint8.onnx&grid={GRID}",
                            tmp_path)
        problems = result["problems"]
    assert problems == [], problems
    assert result["first_status"].startswith("Images 0..15 of seed 0"), result["first_status"]
    assert result["state"] == "done", result["status"]
    assert (result["canvas"]["seed"], result["canvas"]["start"]) == (str(SEED), str(START))

    channels = 1 if model == "gray" else 3
    assert result["card"]["image"] == f"16×16, {'grayscale' if channels == 1 else 'RGB'}"
    assert result["card"]["dataset"] == "synthetic" and result["card"]["z_dim"] == "16"
    assert json.loads(result["metadata"])["dcgan_rt.io"]["output"]["dtype"] == "uint8"

    want = read_pngs(references[model, "uint8"])
    tiles = canvas_tiles(result)
    assert len(tiles) == COUNT
    for k, tile in enumerate(tiles):
        expected = want[f"{START + k:09d}.png"]
        assert (tile[:, :, 3] == 255).all()
        for ch in range(3):
            mismatch = np.count_nonzero(tile[:, :, ch] != expected[:, :, min(ch, channels - 1)])
            assert mismatch == 0, f"tile {k} (image {START + k}), channel {ch}: {mismatch} pixels differ"


def test_web_page_refuses_a_float_model_naming_the_uint8_one(web_example, chromium, site, tmp_path):
    result = check_page(web_example, chromium, f"{site}/web/?model=/gray.generator.onnx", tmp_path)
    assert result["state"] == "error"
    assert "float32" in result["status"] and "--uint8" in result["status"], result["status"]

