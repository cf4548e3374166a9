"""The Python API: docs/api.md's example runs as written, and the functions refuse bad input
the way the commands do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from dcgan_rt import api
from dcgan_rt.errors import UsageError

DOC = REPO / "docs" / "api.md"


def test_docs_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/api.md should have exactly one runnable example"
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "DCGAN_RT_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next((tmp_path / "runs").glob("0*"))
    assert (run_dir / "generator.safetensors").is_file()
    manifest = json.loads((tmp_path / "digits" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["count"] == 200 and manifest["seed"] == 7
    assert len(list((tmp_path / "digits").glob("0*.png"))) == 200
    assert "10 steps" in proc.stdout
    assert float(proc.stdout.strip().splitlines()[-1]) > 0  # the memorisation ratio


def test_importing_the_api_loads_nothing_heavy():
    code = ("import sys, dcgan_rt.api\n"
            "print([m for m in ('torch', 'numpy', 'onnx', 'onnxruntime', 'PIL') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_bad_options_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UsageError, match="unknown training option.*learning_rate"):
        api.train_options("mnist-5k", out=tmp_path, learning_rate=1e-3)
    with pytest.raises(UsageError, match="--img-resolution"):
        api.train("mnist-5k", out=tmp_path, img_resolution=48)
    assert not any(tmp_path.iterdir())
    opts = api.train_options("orl", out=tmp_path)
    assert (opts.img_resolution, opts.img_channels) == (64, 1)  # a built-in source's own size
    with pytest.raises(UsageError, match="-n must be an integer"):
        api.generate(tmp_path / "none.onnx", 0, tmp_path / "out")
    with pytest.raises(UsageError, match="--device"):
        api.evaluate(tmp_path, device="tpu")
