"""Shared fixtures: tiny configs, the CLI as a subprocess, and GPU skips with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # for latent_reference and other test helpers


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
