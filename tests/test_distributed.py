"""torchrun: data-parallel training and sharded generation, 2 CPU ranks over gloo on loopback.

The multi-process tests start the real `dcgan-rt` console script under
`python -m torch.distributed.run --standalone` (torchrun) in a subprocess with a time
limit: one 2-rank training run, resumed by one process and then by 2 ranks again, and
a 2-rank generate compared with a 1-process generate. DCGAN_RT_RANK_DIGESTS makes
each rank write the digests of its networks at the end, so the test can see that the
ranks finished with the same weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_CONFIG, run_cli
from dcgan_rt.errors import UsageError
from dcgan_rt.train.data import epoch_batches
from dcgan_rt.train.distributed import (
    DIGESTS_ENV, RankBatchSampler, World, convert_sync_batchnorm, parameter_digest, rank_batch_size, world_from_env,
)

TORCHRUN_TIMEOUT = 120  # seconds; a hung collective must fail the test, not the suite
TINY_TRAIN = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--code-dim", "4", "--batch-size", "8",
              "--device", "cpu"]


def torchrun(*args: str, nproc: int = 2, env: dict | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node N dcgan-rt ARGS`; on timeout the whole process
    group (torchrun and its workers) is killed."""
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(exe), *map(str, args)]
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1",
                "GLOO_SOCKET_IFNAME": "lo",  # loopback only
                "DCGAN_RT_DIST_TIMEOUT": "60", **(env or {})}
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TORCHRUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun dcgan-rt {' '.join(map(str, args))} did not finish in {TORCHRUN_TIMEOUT} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def png_folder(tmp_path) -> Path:
    """48 small grayscale PNGs: a data set that decodes in milliseconds."""
    from PIL import Image

    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def read_digests(folder: Path) -> list[dict]:
    return [json.loads((folder / f"rank-{r}.json").read_text()) for r in (0, 1)]


def checkpoint_digests(run_dir: Path) -> dict[str, str]:
    """Parameter digests of the networks in checkpoint.pt (what rank 0 saved)."""
    from dcgan_rt.config import ModelConfig
    from dcgan_rt.train.networks import build_discriminator, build_generator

    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    cfg = ModelConfig(**ckpt["model_config"])
    g, d, g_ema = build_generator(cfg, init=False), build_discriminator(cfg, init=False), build_generator(cfg, init=False)
    g.load_state_dict(ckpt["G"])
    d.load_state_dict(ckpt["D"])
    g_ema.load_state_dict(ckpt["G_ema"])
    return {"G": parameter_digest(g), "D": parameter_digest(d), "G_ema": parameter_digest(g_ema), "step": ckpt["step"]}


def assert_ranks_agree(digest_dir: Path, run_dir: Path, step: int) -> None:
    rank0, rank1 = read_digests(digest_dir)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["step"] == rank1["step"] == step
    for name in ("G", "D", "G_ema"):
        assert rank0["parameters"][name] == rank1["parameters"][name], f"{name} differs between the ranks"
    saved = checkpoint_digests(run_dir)
    assert saved["step"] == step
    for name in ("G", "D", "G_ema"):
        assert saved[name] == rank0["parameters"][name], f"checkpoint.pt's {name} is not what the ranks trained"


def test_two_ranks_train_one_run_in_lockstep_and_resume_at_any_world_size(tmp_path, png_folder):
    runs, digests = tmp_path / "runs", tmp_path / "digests"
    proc = ok(torchrun("train", "--data", png_folder, "--out", runs, "--steps", "6", *TINY_TRAIN,
                       env={DIGESTS_ENV: str(digests / "first")}))

    run_dirs = [p for p in runs.iterdir() if p.name != "latest" and not p.name.startswith(".")]
    assert len(run_dirs) == 1, f"expected one run directory, found {sorted(p.name for p in run_dirs)}"
    run_dir = run_dirs[0]
    assert proc.stdout.count("run directory:") == 1 and proc.stdout.count("done:") == 1, proc.stdout  # rank 0 only
    assert_ranks_agree(digests / "first", run_dir, step=6)
    config = json.loads((run_dir / "train_config.json").read_text())
    assert config["world_size"] == 2 and config["options"]["batch_size"] == 8  # 8 is the global batch
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == sorted({m["step"] for m in metrics}) and metrics[-1]["step"] == 6
    assert metrics[-1]["kimg"] == pytest.approx(6 * 8 / 1000)  # images count the global batch
    assert (run_dir / "generator.safetensors").is_file() and list((run_dir / "samples").glob("epoch_*.png"))

    # The checkpoint of 2 ranks continues in 1 process, and that one's in 2 ranks again.
    ok(run_cli("train", "--resume", run_dir, "--steps", "9", timeout=TORCHRUN_TIMEOUT))
    assert checkpoint_digests(run_dir)["step"] == 9
    ok(torchrun("train", "--resume", run_dir, "--steps", "12", env={DIGESTS_ENV: str(digests / "again")}))
    assert_ranks_agree(digests / "again", run_dir, step=12)
    assert [p for p in runs.iterdir() if p.name != "latest" and not p.name.startswith(".")] == [run_dir]
    config = json.loads((run_dir / "train_config.json").read_text())
    assert [r["world_size"] for r in config["resumes"]] == [1, 2] and [r["step"] for r in config["resumes"]] == [6, 9]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 12 and metrics[-1]["kimg"] == pytest.approx(12 * 8 / 1000)


@pytest.mark.gpu
def test_two_gpus_train_with_nccl_and_sync_bn_in_lockstep(tmp_path, png_folder, require_cuda):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 CUDA GPUs, {torch.cuda.device_count()} visible")
    runs, digests = tmp_path / "runs", tmp_path / "digests"
    gpu_train = [a if a != "cpu" else "cuda" for a in TINY_TRAIN]
    ok(torchrun("train", "--data", png_folder, "--out", runs, "--steps", "6", "--sync-bn", *gpu_train,
                env={DIGESTS_ENV: str(digests)}))
    (run_dir,) = [p for p in runs.iterdir() if p.name != "latest" and not p.name.startswith(".")]
    assert_ranks_agree(digests, run_dir, step=6)
    assert json.loads((run_dir / "train_config.json").read_text())["options"]["sync_bn"] is True


def test_two_rank_generate_writes_what_one_process_writes(tmp_path, tiny_onnx):
    one, two = tmp_path / "one", tmp_path / "two"
    ok(run_cli("generate", tiny_onnx, "-n", "40", "--out", one, "--seed", "7", "--batch-size", "8"))
    proc = ok(torchrun("generate", tiny_onnx, "-n", "40", "--out", two, "--seed", "7", "--batch-size", "8"))
    assert "shard 0/2" in proc.stdout and "shard 1/2" in proc.stdout  # each rank took its half

    def files(root: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}

    a, b = files(one), files(two)
    assert sorted(b) == sorted(a)  # one manifest.json, no shard leftovers
    images = [name for name in a if name.endswith(".png") and name != "preview.png"]
    assert len(images) == 40
    for name in images + ["preview.png"]:
        assert a[name] == b[name], f"{name} differs between 2 ranks and 1 process"
    m1, m2 = json.loads(a["manifest.json"]), json.loads(b["manifest.json"])
    assert m2["complete"] and m2["images_done"] == 40
    for key in ("seed", "start", "end", "count", "format", "precision", "model", "latents", "image"):
        assert m1[key] == m2[key], key


def test_rank_batches_together_are_the_single_process_batches():
    n, batch, seed = 100, 12, 3
    for world_size in (2, 3, 4):
        samplers = [RankBatchSampler(n, batch, seed, World(r, world_size, r)) for r in range(world_size)]
        for epoch in (0, 5):
            for s in samplers:
                s.set_epoch(epoch)
            per_rank = [list(s.batches()) for s in samplers]
            single = list(epoch_batches(n, batch, seed, epoch))
            assert all(len(b) == len(single) == n // batch for b in per_rank)
            for k, global_batch in enumerate(single):
                merged = torch.stack([per_rank[r][k] for r in range(world_size)], dim=1).reshape(-1)
                assert torch.equal(merged, global_batch)  # rank r holds positions r, r+W, ... of the batch
            assert len(samplers[0]) == len(list(samplers[0])) == (n // batch) * (batch // world_size)
        resumed = list(samplers[1].batches(start=4))
        assert torch.equal(resumed[0], per_rank[1][4])  # --resume mid-epoch starts at the right global step


def test_batch_size_is_the_global_batch_and_must_split_evenly():
    assert rank_batch_size(64, World(0, 4, 0)) == 16
    with pytest.raises(UsageError, match="--batch-size 30 does not split evenly over 4 processes.*multiple of 4"):
        rank_batch_size(30, World(1, 4, 1))


def test_sync_bn_on_the_cpu_is_refused_with_what_to_do():
    from dcgan_rt.config import ModelConfig
    from dcgan_rt.train.networks import build_generator

    g = build_generator(ModelConfig(**TINY_CONFIG))
    assert convert_sync_batchnorm(g, World()) is g  # one process: nothing to synchronise
    with pytest.raises(UsageError, match="--sync-bn needs CUDA"):
        convert_sync_batchnorm(g, World(0, 2, 0))


def test_torchrun_environment_is_read_and_checked():
    assert not world_from_env({}).distributed
    world = world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (world.rank, world.world_size, world.local_rank, world.is_main) == (3, 4, 1, False)
    with pytest.raises(UsageError, match="torchrun"):
        world_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(UsageError, match="integers"):
        world_from_env({"RANK": "x", "WORLD_SIZE": "2"})
