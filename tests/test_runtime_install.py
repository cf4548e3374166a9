"""The runtime install (DESIGN §8): `pip install dcgan-rt[cpu]` brings no PyTorch and still generates.

A fresh virtual environment (`python -m venv`), dcgan-rt installed into it from this
source tree with [cpu] (pip's cache is used, so after the first run it is seconds), and
the committed few-KB ONNX fixture (tests/data/make_tiny_onnx.py makes it) run through the
real CLI: generate writes the same pixels as this test environment's install, info
reads the card, and a command that needs [train] says so in one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, TESTS

FIXTURE = TESTS / "data" / "tiny_generator.onnx"


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=600, **kwargs)


def _source_copy(root: Path) -> Path:
    """The files a wheel is built from, copied: pip builds a local project in its folder,
    and a build/ left in the checkout could carry modules that no longer exist."""
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    for package in ("dcgan_rt", "train", "export", "cli"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runtime")
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # not this venv's python: no inherited packages
    made = _run([base, "-m", "venv", "--without-pip", venv])  # this pip installs into it: no ensurepip
    assert made.returncode == 0, made.stderr
    pip = _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                "--disable-pip-version-check", "--no-compile", "-q", f"{_source_copy(root)}[cpu]"])
    assert pip.returncode == 0, f"pip install '.[cpu]' failed:\n{pip.stderr[-3000:]}"
    return venv


@pytest.mark.slow
def test_cpu_install_has_no_torch_and_generates(runtime_venv, tmp_path):
    python, cli = runtime_venv / "bin" / "python", runtime_venv / "bin" / "dcgan-rt"
    probe = _run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'torchvision', "
                                "'onnxruntime', 'onnx') if u.find_spec(m)])"])
    assert probe.stdout.strip() == "['onnxruntime', 'onnx']", probe.stdout + probe.stderr

    out = tmp_path / "fresh"
    made = _run([cli, "generate", FIXTURE, "-n", "6", "--seed", "3", "--out", out])
    assert made.returncode == 0, made.stderr
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files if f.name != "preview.png"] == [f"{i:09d}.png" for i in range(6)]
    assert (out / "manifest.json").is_file()

    # The same images as the full install here: the runtime install is not a different product.
    here = tmp_path / "here"
    ours = _run([sys.executable, "-m", "dcgan_rt.cli.main", "generate", FIXTURE, "-n", "6", "--seed", "3",
                 "--out", here])
    assert ours.returncode == 0, ours.stderr
    for i in range(6):
        fresh = np.asarray(Image.open(out / f"{i:09d}.png"), dtype=np.int16)
        full = np.asarray(Image.open(here / f"{i:09d}.png"), dtype=np.int16)
        assert fresh.shape == full.shape == (16, 16)
        assert np.abs(fresh - full).max() <= 1, i  # ONNX Runtime versions may differ by a rounding

    info = _run([cli, "info", FIXTURE, "--json"])
    assert info.returncode == 0 and '"z_dim": 8' in info.stdout, info.stderr


@pytest.mark.slow
def test_cpu_install_says_in_one_line_that_training_needs_train(runtime_venv, tmp_path):
    cli = runtime_venv / "bin" / "dcgan-rt"
    for args in (["train", "--kimg", "1", "--out", tmp_path / "runs"], ["export", REPO / "no-such-run"],
                 ["evaluate", FIXTURE]):
        done = _run([cli, *args])
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, (args, done.stderr)
        assert "pip install 'dcgan-rt[train]'" in lines[0], lines
    assert not (tmp_path / "runs").exists()
