"""The embedding examples reproduce `dcgan-rt generate` image for image (docs/embedding.md).

A tiny grayscale and a tiny RGB generator are exported with the real CLI
(`dcgan-rt export --uint8`), `dcgan-rt generate` writes the reference PNGs, then
examples/python, examples/node and examples/web (in headless Chromium) run on the same
model, seed and indices: uint8 variant identical, fp32 within one level. Conditional
models (classes, attributes) too: with the default label rule and with `--label` (the
page's picker), the same pixels and the same labels.csv as `dcgan-rt generate`. Where node or
Chromium is missing those tests skip with the reason; missing node_modules are
installed with `npm ci` (ONNXRUNTIME_NODE_INSTALL=skip: no CUDA download).
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, TESTS, make_model_dir, run_cli
from test_generate_labels import make_conditional_dir

EXAMPLES = REPO / "examples"
SEED, START, COUNT = 42, 4_294_967_000, 16  # indices near 2^32: the 32-bit wrap must be right
GRID = "4x4"  # the page draws COUNT tiles
MODELS = ("gray", "rgb")
VARIANTS = {"fp32": "generator.onnx", "uint8": "generator.uint8.onnx"}
CLASSES = ["zero", "one", "two, with a comma"]  # a name that labels.csv must quote
ATTRS = ["Smiling", "Male", "Eyeglasses", "Bangs", "Young"]
# (model, --label or None for the default rule): the conditional cases every example runs.
# Fixing Male=0 leaves 9 of the 20 vectors: the renormalising sum is numpy's pairwise one.
LABELLED = [("class", None), ("class", "two, with a comma"), ("class", "1"), ("attrs", None), ("attrs", "Male=0"),
            ("attrs", "Smiling=1,Male=1,Eyeglasses=0,Bangs=1,Young=1")]


@pytest.fixture(scope="session")
def exported(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """{"gray" | "rgb": folder with generator.onnx and generator.uint8.onnx}, via the CLI."""
    root = tmp_path_factory.mktemp("embed")
    sources = {"gray": tiny_model_dir, "rgb": make_model_dir(root / "rgb_model", seed=1, img_channels=3)}
    out = {name: root / f"{name}_export" for name in sources}
    with ThreadPoolExecutor(len(sources)) as pool:  # two processes: both cores
        list(pool.map(lambda name: run_cli("export", sources[name], "--out", out[name], "--uint8", "--no-engine",
                                           check=True), sources))
    return out


@pytest.fixture(scope="session")
def references(exported, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """`dcgan-rt generate` PNGs for every (model, variant): the pixels the examples must match."""
    root = tmp_path_factory.mktemp("generate")
    refs = {(model, variant): root / f"{model}_{variant}" for model in MODELS for variant in VARIANTS}

    def generate(key):
        model, variant = key
        # ONNX Runtime, the examples' runtime: auto would take OpenVINO where it is installed (within a level)
        run_cli("generate", exported[model] / VARIANTS[variant], "-n", COUNT, "--out", refs[key],
                "--seed", SEED, "--start", START, "--backend", "onnxruntime", check=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(generate, refs))
    return refs


def _joint(num_attrs: int, count: int) -> dict:
    """A training set's joint distribution: `count` distinct vectors with irregular weights."""
    rng = np.random.default_rng(7)
    codes = rng.choice(2**num_attrs, count, replace=False)
    vectors = [[int(c >> k & 1) for k in range(num_attrs)] for c in codes]
    weights = rng.random(count) ** 3 + 0.01
    return {"vectors": vectors, "weights": (weights / weights.sum()).tolist()}


@pytest.fixture(scope="session")
def conditional(tmp_path_factory) -> dict[str, Path]:
    """{"class" | "attrs": a conditional model's generator.uint8.onnx}, exported with the CLI."""
    root = tmp_path_factory.mktemp("cond")
    joint = _joint(len(ATTRS), 20)
    assert sum(v[1] == 0 for v in joint["vectors"]) == 9  # Male=0 keeps 9: numpy's pairwise sum, not a plain one
    sources = {
        "class": make_conditional_dir(root / "class_model", {"kind": "class", "names": CLASSES}, num_classes=3),
        "attrs": make_conditional_dir(root / "attr_model", {"kind": "attributes", "names": ATTRS, "joint": joint},
                                      num_attrs=len(ATTRS), img_channels=3),
    }
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda name: run_cli("export", sources[name], "--out", root / name, "--uint8", "--no-engine",
                                           check=True), sources))
    return {name: root / name / VARIANTS["uint8"] for name in sources}


@pytest.fixture(scope="session")
def labelled_refs(conditional, tmp_path_factory) -> dict[tuple[str, str | None], Path]:
    """`dcgan-rt generate` images and labels.csv for every LABELLED case."""
    root = tmp_path_factory.mktemp("generate_labelled")
    refs = {case: root / f"{case[0]}_{n}" for n, case in enumerate(LABELLED)}

    def generate(case):
        model, label = case
        run_cli("generate", conditional[model], "-n", COUNT, "--out", refs[case], "--seed", SEED, "--start", START,
                *(["--label", label] if label else []), check=True)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(generate, refs))
    return refs


def assert_same_labelled_output(got_dir: Path, want_dir: Path, case) -> None:
    assert_same_images(got_dir, want_dir, 0)
    want = (want_dir / "labels.csv").read_bytes()
    assert (got_dir / "labels.csv").read_bytes() == want, f"{case}: labels.csv differs from dcgan-rt generate's"
    rows = want.decode().splitlines()[1:]
    if case == ("class", None):  # the default rule: balanced classes, i mod K
        quoted = [f'"{c}"' if "," in c else c for c in CLASSES]
        assert rows == [f"{i},{quoted[i % 3]}" for i in range(START, START + COUNT)]
    if case == ("attrs", None):  # the default rule draws several of the joint's vectors
        assert len({r.split(",", 1)[1] for r in rows}) > 3, rows


def _npm_ci_needed(folder: Path) -> bool:
    """node_modules missing, or not what package-lock.json pins."""
    installed = folder / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return True
    want = json.loads((folder / "package-lock.json").read_text())["packages"]
    have = json.loads(installed.read_text())["packages"]
    want = {k: v.get("version") for k, v in want.items() if k}
    return want != {k: v.get("version") for k, v in have.items()}


@functools.cache
def _node_skip_reason() -> str | None:
    node = shutil.which("node")
    if node is None:
        return "node is not installed (Node.js 18+ runs examples/node and examples/web)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        return f"node {version} is too old: the examples need Node.js 18+"
    if shutil.which("npm") is None:
        return "npm is not installed (it installs the examples' packages)"
    return None


def _node_example(name: str) -> Path:
    reason = _node_skip_reason()
    if reason:
        pytest.skip(reason)
    folder = EXAMPLES / name
    if _npm_ci_needed(folder):
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                              env={**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"npm ci in {folder} failed:\n{proc.stdout}\n{proc.stderr}")
    return folder


@pytest.fixture(scope="session")
def node_example() -> Path:
    return _node_example("node")


@pytest.fixture(scope="session")
def web_example() -> Path:
    return _node_example("web")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); set CHROMIUM to use another")
    return path


def node(*args, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["node", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def read_pngs(folder: Path) -> dict[str, np.ndarray]:
    """{file name: (H, W, C) uint8} for the image PNGs (named by index) in `folder`, checking the PNG mode."""
    images = {}
    for f in sorted(folder.glob("*.png")):
        if not f.stem.isdigit():  # generate's preview.png
            continue
        with Image.open(f) as im:
            assert im.mode in ("L", "RGB"), f"{f}: PNG mode {im.mode}"
            a = np.asarray(im)
        images[f.name] = a[:, :, None] if a.ndim == 2 else a
    return images


def assert_same_images(got_dir: Path, want_dir: Path, tolerance: int) -> None:
    got, want = read_pngs(got_dir), read_pngs(want_dir)
    names = [f"{i:09d}.png" for i in range(START, START + COUNT)]
    assert sorted(want) == names, f"dcgan-rt generate wrote {sorted(want)}"
    assert sorted(got) == names, f"the example wrote {sorted(got)}, expected {names[0]}..{names[-1]}"
    for name in names:
        assert got[name].shape == want[name].shape, f"{name}: {got[name].shape} vs {want[name].shape}"
        diff = np.abs(got[name].astype(int) - want[name].astype(int)).max()
        assert diff <= tolerance, f"{name} differs from dcgan-rt generate's by {diff} levels"



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


JS_LABELS = """
import { labelUniform, pairwiseSum } from "./labels.js";
const [what, ...args] = process.argv.slice(1);
if (what === "u") process.stdout.write(JSON.stringify(args.map((p) => labelUniform(...p.split(":").map(Number)))));
else process.stdout.write(JSON.stringify(JSON.parse(args[0]).map((a) => pairwiseSum(a))));
"""


def test_js_label_uniforms_equal_the_documented_vectors(node_example):
    from dcgan_rt.labels import label_uniforms

    pairs = [(0, 0), (0, 1), (1, 0), (42, 1234), (2**32 - 1, 2**32 - 1), (7, 4_294_967_000)]
    proc = node("--input-type=module", "-e", JS_LABELS, "u", *(f"{s}:{i}" for s, i in pairs), cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert [round(u * 2**24) for u in got[:4]] == [9770061, 3808002, 9063162, 13443800]  # docs/latents.md §5
    assert got == [float(label_uniforms(s, np.array([i]))[0]) for s, i in pairs]


def test_js_renormalising_sum_is_numpys_bit_for_bit(node_example):
    """labels.js renormalises restricted attribute weights by numpy's pairwise float64 sum: a plain
    left-to-right sum differs from it in the last bit for many lengths (checked here too)."""
    rng = np.random.default_rng(3)
    arrays = [rng.random(n) ** 4 for n in [1, 2, 7, 8, 9, 15, 16, 17, 100, 128, 129, 255, 300, 1000, 2000]]
    proc = node("--input-type=module", "-e", JS_LABELS, "sum", json.dumps([a.tolist() for a in arrays]),
                cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [float(a.sum()) for a in arrays]
    assert any(float(sum(a.tolist())) != float(a.sum()) for a in arrays), "no length where the order matters"


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


# The example must run where dcgan-rt is not installed: import it with both blocked.
RUN_BLOCKED = (
    "import runpy, sys; sys.modules.update(dcgan_rt=None, torch=None); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


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


@pytest.mark.parametrize("case", LABELLED, ids=[f"{m}-{label or 'default'}" for m, label in LABELLED])
def test_python_example_feeds_the_label_as_generate_does(conditional, labelled_refs, tmp_path, case):
    model, label = case
    out = tmp_path / "py"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKED, str(EXAMPLES / "python" / "generate.py"), str(conditional[model]),
         "-n", str(COUNT), "--out", str(out), "--seed", str(SEED), "--start", str(START), "--batch-size", "5",
         *(["--label", label] if label else [])],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_labelled_output(out, labelled_refs[case], case)


@pytest.mark.parametrize("case", LABELLED, ids=[f"{m}-{label or 'default'}" for m, label in LABELLED])
def test_node_example_feeds_the_label_as_generate_does(node_example, conditional, labelled_refs, tmp_path, case):
    model, label = case
    out = tmp_path / "node"
    proc = node("generate.js", conditional[model], "-n", COUNT, "--out", out, "--seed", SEED, "--start", START,
                "--batch-size", 5, *(["--label", label] if label else []), cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    assert_same_labelled_output(out, labelled_refs[case], case)


def _bad_label_cases(exported, conditional):
    gray = exported["gray"] / VARIANTS["uint8"]
    return [
        (gray, "1", "needs a conditional model"),
        (conditional["class"], "three", "unknown class"),
        (conditional["class"], "3", "out of range"),
        (conditional["class"], "Smiling=1", "labels are classes"),
        (conditional["attrs"], "Smiling", "labels are attributes"),
        (conditional["attrs"], "Beard=1", "unknown attribute"),
        (conditional["attrs"], "Smiling=2", "0 or 1"),
    ]


def test_examples_refuse_a_label_the_model_cannot_take(node_example, exported, conditional, tmp_path):
    for n, (model, label, needle) in enumerate(_bad_label_cases(exported, conditional)):
        py = subprocess.run([sys.executable, str(EXAMPLES / "python" / "generate.py"), str(model), "-n", "2",
                             "--out", str(tmp_path / f"py{n}"), "--label", label], capture_output=True, text=True)
        js = node("generate.js", model, "-n", 2, "--out", tmp_path / f"js{n}", "--label", label, cwd=node_example)
        for name, proc in (("python", py), ("node", js)):
            assert proc.returncode == 2, (name, label, proc.stderr)
            assert needle in proc.stderr.strip().splitlines()[-1], (name, label, proc.stderr)
            assert "Traceback" not in proc.stderr and "    at " not in proc.stderr, proc.stderr
        assert not (tmp_path / f"py{n}").exists() and not (tmp_path / f"js{n}").exists(), label


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



class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                      ".html": "text/html", ".onnx": "application/octet-stream"}

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site(web_example, node_example, exported, conditional, tmp_path_factory):
    """http://127.0.0.1:PORT serving examples/web, examples/node and the models, as in the docs."""
    root = tmp_path_factory.mktemp("site")
    (root / "web").symlink_to(web_example)
    (root / "node").symlink_to(node_example)
    for model in MODELS:
        for filename in VARIANTS.values():
            shutil.copy(exported[model] / filename, root / f"{model}.{filename}")
    for model, path in conditional.items():
        shutil.copy(path, root / f"{model}.cond.onnx")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def check_page(web_example: Path, chromium: str, url: str, tmp_path: Path, *extra) -> dict:
    out = tmp_path / "page.json"
    proc = node("check_page.mjs", url, "--seed", SEED, "--start", START, "--out", out, *extra,
                "--screenshot", tmp_path / "page.png", cwd=web_example, env={"CHROMIUM": chromium}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def canvas_tiles(result: dict) -> list[np.ndarray]:
    """The page's tiles as (H, W, 4) RGBA arrays, in image order."""
    c = result["canvas"]
    rgba = np.frombuffer(base64.b64decode(c["rgba_base64"]), np.uint8).reshape(c["height"], c["width"], 4)
    size, gap, cols, count = (int(c[k]) for k in ("size", "gap", "cols", "count"))
    tiles = []
    for k in range(count):
        y, x = gap + (k // cols) * (size + gap), gap + (k % cols) * (size + gap)
        tiles.append(rgba[y : y + size, x : x + size])
    return tiles


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


@pytest.mark.parametrize("case", [("class", None), ("class", "one"), ("attrs", "Male=0")],
                         ids=["class-default", "class-picked", "attrs-picked"])
def test_web_page_picker_draws_generates_labelled_pixels(web_example, chromium, site, conditional, labelled_refs,
                                                         tmp_path, case):
    model, label = case
    result = check_page(web_example, chromium, f"{site}/web/?model=/{model}.cond.onnx&grid={GRID}", tmp_path,
                        *(["--label", label] if label else []))
    assert result["problems"] == [], result["problems"]
    assert result["state"] == "done", result["status"]
    assert result["canvas"]["label"] == (label or "")
    assert result["card"]["labels"].startswith("class: zero" if model == "class" else "attributes: Smiling")
    ref = labelled_refs[case] if case in labelled_refs else None
    if ref is None:  # a class picked by name: generate --label one
        ref = tmp_path / "ref"
        run_cli("generate", conditional[model], "-n", COUNT, "--out", ref, "--seed", SEED, "--start", START,
                "--label", label, check=True)
    want = read_pngs(ref)
    channels = 1 if model == "class" else 3
    for k, tile in enumerate(canvas_tiles(result)):
        expected = want[f"{START + k:09d}.png"]
        for ch in range(3):
            mismatch = np.count_nonzero(tile[:, :, ch] != expected[:, :, min(ch, channels - 1)])
            assert mismatch == 0, f"{case}: tile {k} (image {START + k}), channel {ch}: {mismatch} pixels differ"
