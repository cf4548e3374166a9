"""What the embedding-example tests share (tests/test_examples*.py): exported models, node, Chromium, a site.

Loaded as a pytest plugin from conftest.py, so its session fixtures (a tiny grayscale and
RGB generator and two conditional ones, exported with the real CLI; the examples' npm
packages; a local web server) are made once however many example test files run.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_model_dir, run_cli
from PIL import Image

EXAMPLES = REPO / "examples"
SEED, START, COUNT = 42, 4_294_967_000, 16  # indices near 2^32: the 32-bit wrap must be right
GRID = "4x4"  # the page draws COUNT tiles
MODELS = ("gray", "rgb")
VARIANTS = {"fp32": "generator.onnx", "uint8": "generator.uint8.onnx"}
CLASSES = ["zero", "one", "two, with a comma"]  # a name that labels.csv must quote
ATTRS = ["Smiling", "Male", "Eyeglasses", "Bangs", "Young"]

# The example must run where dcgan-rt is not installed: import it with both blocked.
RUN_BLOCKED = (
    "import runpy, sys; sys.modules.update(dcgan_rt=None, torch=None); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def generate_ref(model: Path, out: Path, *extra: str) -> None:
    """`dcgan-rt generate` of the examples' job (SEED, START, COUNT) on ONNX Runtime, the
    examples' runtime, named so that the comparison holds whatever auto's rule becomes
    (dcgan-rt's ONNX Runtime sessions run the Concat interleave, the examples the file's
    own graph: the pixels must still match bit for bit)."""
    run_cli("generate", model, "-n", COUNT, "--out", out, "--seed", SEED, "--start", START,
            "--backend", "onnxruntime", *extra, check=True)


def export_uint8(sources: dict[str, Path], outs: dict[str, Path]) -> None:
    """`dcgan-rt export SOURCE --out OUT --uint8` for each model, two processes: both cores."""
    with ThreadPoolExecutor(len(sources)) as pool:
        list(pool.map(lambda name: run_cli("export", sources[name], "--out", outs[name], "--uint8", "--no-engine",
                                           check=True), sources))


@pytest.fixture(scope="session")
def exported(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """{"gray" | "rgb": folder with generator.onnx and generator.uint8.onnx}, via the CLI."""
    root = tmp_path_factory.mktemp("embed")
    sources = {"gray": tiny_model_dir, "rgb": make_model_dir(root / "rgb_model", seed=1, img_channels=3)}
    out = {name: root / f"{name}_export" for name in sources}
    export_uint8(sources, out)
    return out


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
        "class": make_model_dir(root / "class_model", seed=1, labels={"kind": "class", "names": CLASSES},
                                num_classes=3),
        "attrs": make_model_dir(root / "attr_model", seed=1,
                                labels={"kind": "attributes", "names": ATTRS, "joint": joint},
                                num_attrs=len(ATTRS), img_channels=3),
    }
    export_uint8(sources, {name: root / name for name in sources})
    return {name: root / name / VARIANTS["uint8"] for name in sources}


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
