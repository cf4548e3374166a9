"""A full disk, for real: during generate and export (checkpointing: see below).

Two ways to run out of space without filling the machine's disk:
- a small tmpfs mounted for the test (root only; elsewhere the test says why it
  skips): write() fails with ENOSPC exactly as on a full disk, and a remount with
  a larger size "frees space";
- RLIMIT_FSIZE on the child process, with SIGXFSZ ignored so that write() fails
  with EFBIG instead of killing it: any file larger than the limit cannot be written.

Each test checks what a user relies on: one clear error (exit 1) that says to free
space and re-run; the file being written is gone (no partial file, no temp file);
everything finished earlier is intact; and once space is back, the same command
finishes the job with exactly the files an unconstrained run writes.

A full disk while `train` writes its checkpoint is one phase of
tests/test_interrupts.py's training test, which already holds an interrupted run and
its uninterrupted twin: the failed save leaves the previous checkpoint byte-identical,
and the resume that follows ends with the twin's exact weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_clean_error, job_pngs, run_cli
from dcgan_rt.backends import select_backend
from dcgan_rt.latents import latent_range


def run_cli_limited(*args, max_file_bytes: int, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`dcgan-rt ARGS` with RLIMIT_FSIZE: no file it writes may grow past max_file_bytes."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DCGAN_RT_OFFLINE": "1"}
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=limit)


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or ".export-" in str(p))


@contextlib.contextmanager
def small_filesystem(where: Path, size: str):
    """A tmpfs of `size` mounted at `where`; yields a function that resizes it."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE tests below cover full disks without it")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs (a container without CAP_SYS_ADMIN?)")
    try:
        yield lambda new: subprocess.run(["mount", "-o", f"remount,size={new}", str(where)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_generate_png_on_a_full_filesystem_keeps_finished_images_and_resumes(tiny_onnx, tmp_path):
    n, seed = 300, 5
    with select_backend(tiny_onnx, "onnxruntime") as b:
        expected = dict(enumerate(job_pngs(tiny_onnx, seed, b.images(latent_range(seed, 0, n, b.z_dim)))))
    with small_filesystem(tmp_path / "disk", "256k") as resize:  # 64 pages of 4 KiB: room for ~60 files
        out = tmp_path / "disk" / "images"
        args = ["generate", tiny_onnx, "-n", n, "--seed", seed, "--batch-size", 25, "--out", out]
        proc = run_cli(*args)
        assert_clean_error(proc, 1, "no space left on device", "free some space", "run the same command again")
        assert not temp_files(out)
        finished = {int(p.stem): p.read_bytes() for p in out.glob("[0-9]*.png")}
        assert 0 < len(finished) < n
        assert all(data == expected[i] for i, data in finished.items()), "a damaged image under a final name"
        assert json.loads((out / "manifest.json").read_text())["complete"] is False

        resize("4m")  # space is back
        again = run_cli(*args, check=True)
        assert f"{len(finished):,} were already there" in again.stdout
        final = {int(p.stem): p.read_bytes() for p in out.glob("[0-9]*.png")}
        assert final == expected
        assert all(final[i] == data for i, data in finished.items())
        assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_generate_npy_past_the_file_size_limit_keeps_the_finished_shard_and_resumes(tiny_onnx, tmp_path):
    # Shard 0 holds images 500..999 (128 KB), shard 1 images 1000..1999 (256 KB): a 200 KB
    # limit lets the first one through and stops the second one mid-write.
    args = ["generate", tiny_onnx, "--format", "npy", "--start", 500, "-n", 1500, "--batch-size", 100]
    out, reference = tmp_path / "limited", tmp_path / "reference"
    proc = run_cli_limited(*args, "--out", out, max_file_bytes=200_000)
    assert_clean_error(proc, 1, f"cannot write to {out}", "free some space", "run the same command again")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["images-000000.npy",
                                                                                   "manifest.json"]
    assert not temp_files(out)
    shard0 = np.load(out / "images-000000.npy")
    assert shard0.shape == (500, 16, 16, 1)

    run_cli(*args, "--out", reference, check=True)
    np.testing.assert_array_equal(shard0, np.load(reference / "images-000000.npy"))
    resumed = run_cli(*args, "--out", out, check=True)  # no limit now
    assert "500 were already there" in resumed.stdout
    for name in ("images-000000.npy", "images-000001.npy", "index.json", "preview.png"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_export_past_the_file_size_limit_writes_nothing(tiny_model_dir, tmp_path):
    run = Path(shutil.copytree(tiny_model_dir, tmp_path / "run"))
    before = sorted(p.name for p in run.iterdir())
    proc = run_cli_limited("export", run, "--no-engine", max_file_bytes=20_000)  # generator.onnx is ~36 KB
    assert_clean_error(proc, 1, "cannot write the export", "nothing was written", "free some space")
    assert sorted(p.name for p in run.iterdir()) == before  # no export/ folder, no staging folder
    # (with space back, export is the ordinary one tests/test_export.py runs)

