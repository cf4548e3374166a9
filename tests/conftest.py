"""Shared fixtures: tiny configs, the CLI as a subprocess, and GPU skips with a reason (the embedding
examples' fixtures are in examples_support.py, loaded from here as a plugin)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # for latent_reference and other test helpers
pytest_plugins = ["examples_support"]  # session fixtures of test_examples*.py, made once for both files

# Caches the tests fill (compiled OpenVINO models, decoded folders, FID statistics, the digit
# classifier) go to a folder of this run's, never the user's ~/.cache/dcgan-rt; every CLI
# subprocess inherits it. A DCGAN_RT_CACHE set by the caller is kept.
if "DCGAN_RT_CACHE" not in os.environ:
    os.environ["DCGAN_RT_CACHE"] = tempfile.mkdtemp(prefix="dcgan-rt-test-cache-")
    atexit.register(shutil.rmtree, os.environ["DCGAN_RT_CACHE"], ignore_errors=True)


def _gpu_skip_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


def _tensorrt_skip_reason() -> str | None:
    reason = _gpu_skip_reason()
    if reason:
        return reason
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'dcgan-rt[gpu]')"
    return None


@pytest.fixture
def require_cuda():
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def require_tensorrt():
    reason = _tensorrt_skip_reason()
    if reason:
        pytest.skip(reason)


def as_in_a_terminal() -> None:
    """Popen preexec_fn for processes a test stops with SIGINT: Ctrl-C's default action, even
    when pytest itself was started in the background (where the shell ignores SIGINT, and
    its children would inherit that until dcgan-rt installs its own handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None, timeout: float = 600,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `dcgan-rt` console script in a subprocess (stdout not a TTY)."""
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        cmd + [str(a) for a in args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dcgan-rt {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def assert_clean_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """A user error: the given exit code, no traceback, and a message naming the problem."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{out}"
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle.lower() in out.lower(), f"{needle!r} not in:\n{out}"


@pytest.fixture
def cli():
    return run_cli


TINY_CONFIG = dict(z_dim=16, img_resolution=16, img_channels=1, g_width=8, d_width=8, code_dim=4)


def make_model_dir(out: Path, seed: int = 0, labels: dict | None = None, **config) -> Path:
    """A generator.safetensors + generator.json with non-trivial weights and BatchNorm
    statistics (a few train-mode forward passes), without running a training loop.
    `labels`: the card's labels entry of a conditional model (TINY_CONFIG without its
    code; pass num_classes or num_attrs)."""
    import torch

    from dcgan_rt.config import ModelConfig
    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.train.networks import build_generator
    from dcgan_rt.train.release import save_generator

    base = TINY_CONFIG if labels is None else {k: v for k, v in TINY_CONFIG.items() if k != "code_dim"}
    cfg = ModelConfig(**{**base, **config})
    torch.manual_seed(seed)
    g = build_generator(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            if labels is None:
                g(torch.randn(32, cfg.z_dim))
                continue
            label = (torch.randint(0, cfg.num_classes, (32,)) if cfg.num_classes
                     else torch.randint(0, 2, (32, cfg.num_attrs)).float())
            g(torch.randn(32, cfg.z_dim), label)
    out.mkdir(parents=True, exist_ok=True)
    save_generator(g.eval(), ModelCard(cfg, training_step=3, dataset="synthetic", labels=labels,
                                       extra={"seed": seed}), out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny 16x16 grayscale generator in a directory, like a run directory's release files."""
    return make_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny generator exported to the fp32 ONNX contract model."""
    from dcgan_rt.export.onnx_export import export_onnx
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(tiny_model_dir)
    return export_onnx(g, card, tmp_path_factory.mktemp("tiny_onnx") / "generator.onnx")


def job_pngs(model: Path, seed: int, images, first_index: int = 0) -> list[bytes]:
    """The exact PNG bytes `generate MODEL --seed SEED` writes for `images` (indices from
    first_index on): pixels plus the job's provenance chunks (dcgan_rt.provenance)."""
    from dcgan_rt.images import encode_pngs

    text = _job_text(model, seed)
    indices = range(first_index, first_index + len(images))
    return encode_pngs(images, text=text.for_batch(indices), common_text=text.constant)


def job_preview(model: Path, seed: int, images) -> bytes:
    """The exact preview.png of a finished job whose first images are `images`."""
    from dcgan_rt.images import encode_png, make_grid

    return encode_png(make_grid(images[:64], 8), text=_job_text(model, seed).constant)


def _job_text(model: Path, seed: int):
    """The PNG text chunks of a `generate MODEL --seed SEED` job (dcgan_rt.provenance)."""
    from dcgan_rt.backends import source_sha256
    from dcgan_rt.digest import sha256_file
    from dcgan_rt.model_path import resolve_model
    from dcgan_rt.provenance import PngText, Provenance

    resolved = resolve_model(model)
    return PngText(Provenance(model_sha256=source_sha256(resolved) or sha256_file(resolved.path), seed=seed))
