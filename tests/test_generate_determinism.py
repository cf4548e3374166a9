"""Image i of seed S is the same whatever the batch size, backend, shard split or interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import run_cli
from dcgan_rt.pipeline import GenerateRequest, generate

N_KILLED = 3000


def npy_images(out: Path) -> np.ndarray:
    index = json.loads((out / "index.json").read_text())
    return np.concatenate([np.load(out / s["images"]) for s in index["shards"]])


def files(out: Path) -> dict[str, bytes]:
    """Every output file by name, without lock files (hidden) and the run log in the manifest."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if not p.name.startswith(".") and p.name != "manifest.json"}


def test_batch_sizes_and_backends_agree(tiny_model_dir, tiny_onnx, tmp_path):
    runs = {}
    for backend, model, batch in [("onnxruntime", tiny_onnx, 1), ("onnxruntime", tiny_onnx, 7),
                                  ("onnxruntime", tiny_onnx, 64), ("torch", tiny_model_dir, 7),
                                  ("torch", tiny_model_dir, 64)]:
        out = tmp_path / f"{backend}-{batch}"
        generate(GenerateRequest(model=model, out=out, n=150, seed=3, batch_size=batch, backend=backend,
                                 format="npy"))
        runs[backend, batch] = npy_images(out).astype(np.int16)
    reference = runs["onnxruntime", 64]
    assert reference.shape == (150, 16, 16, 1) and reference.std() > 0
    for key, images in runs.items():
        diff = np.abs(images - reference)
        assert diff.max() <= 1, f"{key} differs by {diff.max()} levels"
        assert (diff == 0).mean() > 0.99, f"{key}: only {(diff == 0).mean():.2%} of pixels identical"
    assert np.array_equal(runs["onnxruntime", 1], runs["onnxruntime", 7])


def test_shards_together_equal_one_unsharded_run(tiny_onnx, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    generate(GenerateRequest(model=tiny_onnx, out=whole, n=101, start=10, batch_size=16))
    results = [generate(GenerateRequest(model=tiny_onnx, out=sharded, n=101, start=10, batch_size=16,
                                        shard=(k, 3))) for k in (2, 0, 1)]
    assert [r.shard_images for r in results] == [34, 33, 34]
    assert [r.complete for r in results] == [False, False, True]  # the last shard to finish merges
    assert files(sharded) == files(whole)
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_shards"] == 3 and manifest["count"] == 101
    assert sorted(r["shard"] for r in manifest["runs"]) == ["0/3", "1/3", "2/3"]
    assert not list(sharded.glob("manifest.shard-*"))


def test_torchrun_ranks_split_the_job_and_leave_one_manifest(tiny_onnx, tmp_path):
    whole, ranked = tmp_path / "whole", tmp_path / "ranked"
    generate(GenerateRequest(model=tiny_onnx, out=whole, n=2500, format="tar", batch_size=128))
    exe = Path(sys.executable).with_name("dcgan-rt")
    procs = [
        subprocess.Popen([str(exe), "generate", str(tiny_onnx), "-n", "2500", "--out", str(ranked), "--format", "tar",
                          "--batch-size", "128"],
                         env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                              "LOCAL_WORLD_SIZE": "2"},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in (0, 1)
    ]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "shard 0/2" in logs[0] and "shard 1/2" in logs[1]
    assert files(ranked) == files(whole)  # tar shards are byte-identical (fixed mtimes, sorted members)
    manifest = json.loads((ranked / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_shards"] == 2 and len(manifest["runs"]) == 2


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_files(tiny_onnx, tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe), "generate", str(tiny_onnx), "-n", str(N_KILLED), "--out", str(killed), "--batch-size", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if killed.is_dir() and sum(1 for n in os.listdir(killed) if n.endswith(".png")) >= 100:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = [n for n in os.listdir(killed) if n.endswith(".png") and not n.startswith(".")]
    assert 0 < len(written) < N_KILLED, f"the run was not caught mid-way ({len(written)} images)"
    assert not json.loads((killed / "manifest.json").read_text())["complete"]

    resumed = run_cli(*cmd[1:], check=True)
    assert "resuming" in resumed.stdout
    generate(GenerateRequest(model=tiny_onnx, out=whole, n=N_KILLED, batch_size=64))
    assert files(killed) == files(whole)  # exactly N images (+ preview), byte for byte
    assert not [n for n in os.listdir(killed) if n.endswith(".tmp")]
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["runs"]) == 2
