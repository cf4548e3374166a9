"""`dcgan-rt train` end to end, as a user runs it: artifacts, resume, Ctrl-C, divergence, bad input.

Tiny configs (16 px, widths 8, 48 images, batch 16: three steps an epoch) keep every
run to a few seconds of compute; the CLI always runs in a real subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import as_in_a_terminal, assert_clean_error, run_cli
from dcgan_rt.train.data import mnist_5k_arrays
from dcgan_rt.train.options import TrainOptions

# --snapshot-kimg 0: a grid and checkpoint every epoch, which these tests watch for
TINY = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--code-dim", "4", "--batch-size", "16",
        "--snapshot-kimg", "0",
        "--lr-rampdown", "0"]  # a ramp-down follows the run's length: one resumed to a longer length differs
ENV = {"DCGAN_RT_OFFLINE": "1"}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    """48 real digits as PNG files: three steps an epoch at batch 16."""
    folder = tmp_path_factory.mktemp("digits")
    pixels, _ = mnist_5k_arrays()
    for i in range(48):
        Image.fromarray(pixels[i * 100 + 7]).save(folder / f"{i:03d}.png")
    return folder


def train(*args, cwd=None, check=True):
    return run_cli("train", *args, cwd=cwd, env=ENV, timeout=300, check=check)


@pytest.fixture(scope="module")
def two_epochs(digits_dir, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("runs")
    proc = train("--data", digits_dir, "--out", out, "--epochs", "2", *TINY)
    return out, proc


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_writes_every_artifact(two_epochs, digits_dir):
    out, proc = two_epochs
    run = out / "00000-digits0-16px"
    if not run.is_dir():  # tmp_path_factory may number the folder name
        run = next(p for p in out.iterdir() if p.is_dir())
    assert str(run) in proc.stdout and proc.stdout.strip().splitlines()[-1] == str(run)
    assert (out / "latest").resolve() == run.resolve()

    config = json.loads((run / "train_config.json").read_text())
    defaults = TrainOptions()
    assert config["options"]["batch_size"] == 16  # as given; every other option recorded at its default
    for name in ("lr_g", "lr_d", "beta1", "beta2", "loss", "r1_gamma", "r1_every", "ema_kimg", "seed"):
        assert config["options"][name] == getattr(defaults, name), name
    assert {k: v for k, v in config["dataset"].items() if k != "digest"} == {
        "name": digits_dir.name, "path": str(digits_dir), "num_images": 48, "skipped": 0}
    assert config["steps_per_epoch"] == 3 and config["total_steps"] == 6

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)  # tensors and plain data only
    assert ckpt["step"] == 6 and ckpt["epoch"] == 2 and ckpt["cur_nimg"] == 96
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "rng"} <= set(ckpt)
    assert ckpt["opt_D"]["state"] and all(isinstance(v, torch.Tensor) for v in ckpt["rng"].values())

    from dcgan_rt.train.release import load_generator

    g, card = load_generator(run)
    assert card.weights == "ema" and card.training_step == 6 and card.extra["run"] == run.name
    images = g(torch.randn(5, 16))
    assert images.shape == (5, 1, 16, 16) and images.abs().max() <= 1
    assert set(load_file(run / "generator.safetensors")) == set(g.state_dict())

    for name in ("samples/epoch_0001.png", "samples/epoch_0002.png", "progress.png", "real_vs_generated.png",
                 "losses.png"):
        with Image.open(run / name) as im:
            assert im.width > 64 and im.height > 64, name
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]  # every epoch end is logged (and every 10 steps)
    assert {"loss_d", "loss_g", "d_real", "d_fake", "images_per_s"} <= set(rows[0])
    assert "epoch 2/2" in proc.stdout and "loss_D" in proc.stdout and "D(G(z))" in proc.stdout


def test_resume_continues_exactly(two_epochs, digits_dir, tmp_path):
    out, _ = two_epochs
    half = tmp_path / "half"
    shutil.copytree(next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink()), half)
    train("--resume", half, "--epochs", "4")
    whole_out = tmp_path / "whole"
    train("--data", digits_dir, "--out", whole_out, "--epochs", "4", *TINY)
    whole = next(p for p in whole_out.iterdir() if p.is_dir() and not p.is_symlink())

    a, b = load_file(whole / "generator.safetensors"), load_file(half / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (whole, half))
    assert ca["step"] == cb["step"] == 12
    assert all(torch.equal(ca["D"][k], cb["D"][k]) for k in ca["D"])
    assert len(list((half / "samples").glob("epoch_*.png"))) == 4
    config = json.loads((half / "train_config.json").read_text())
    assert config["options"]["epochs"] == 4 and config["resumes"][0]["step"] == 6


def test_resume_refuses_a_changed_recipe(two_epochs):
    out, _ = two_epochs
    proc = train("--resume", out / "latest", "--epochs", "3", "--batch-size", "32", check=False)
    assert_clean_error(proc, 2, "--batch-size 32 differs", "--resume continues")


def test_divergence_stops_and_keeps_the_last_good_checkpoint(two_epochs, tmp_path):
    out, _ = two_epochs
    run = tmp_path / "run"
    shutil.copytree((out / "latest").resolve(), run)
    before = {name: _sha(run / name) for name in ("checkpoint.pt", "generator.safetensors")}
    # A learning rate of 1e20 overflows the weights in the first step: a real divergence.
    proc = train("--resume", run, "--epochs", "4", "--lr-g", "1e20", "--lr-d", "1e20", check=False)
    assert_clean_error(proc, 1, "became nan", "last good checkpoint", "lower learning rates")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {name: _sha(run / name) for name in before} == before


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(digits_dir, tmp_path):
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe), "train", "--data", str(digits_dir), "--out", str(tmp_path), "--steps", "100000", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV, "NO_COLOR": "1"}, preexec_fn=as_in_a_terminal)
    samples = tmp_path / "latest" / "samples"
    deadline = time.monotonic() + 240
    while not (samples.is_dir() and any(samples.glob("epoch_0002.png"))) and time.monotonic() < deadline:
        time.sleep(0.2)  # two epochs done: training is under way
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "--resume" in stderr and "checkpoint saved" in stderr
    run = (tmp_path / "latest").resolve()
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 6
    train("--resume", run, "--steps", str(step + 4))
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == step + 4


@pytest.mark.parametrize("args, code, needles", [
    (["--data", "imagenet"], 2, ["unknown --data 'imagenet'"]),
    (["--img-resolution", "48"], 2, ["--img-resolution", "16, 32, 64, 128"]),
    (["--resume", "runs/00042-gone"], 1, ["--resume", "not found"]),
    (["--out", "a-file/runs"], 1, ["a-file", "--out"]),
])
def test_bad_input_is_one_clear_line(tmp_path, args, code, needles):
    (tmp_path / "a-file").write_text("a file where the output folder should be")
    proc = train(*TINY, *args, "--steps", "1", cwd=tmp_path, check=False)  # the last --img-resolution wins
    assert_clean_error(proc, code, *needles)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_concurrent_trainings_get_distinct_run_dirs(tmp_path):
    from dcgan_rt.train.rundir import create_run_dir

    barrier = threading.Barrier(8)

    def make(i):
        barrier.wait()
        return create_run_dir(tmp_path, f"job{i}-16px")

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(make, range(8)))
    numbers = sorted(int(p.name[:5]) for p in made)
    assert numbers == list(range(8)) and len({p.name for p in made}) == 8


def test_a_long_run_s_animation_keeps_at_most_40_frames_ending_on_the_last_epoch(tmp_path):
    import numpy as np

    from dcgan_rt.train.plots import save_progression

    grids = [np.full((4, 1, 16, 16), k, dtype=np.uint8) for k in range(150)]  # epoch k draws gray level k
    save_progression(grids, [f"ep {k + 1}" for k in range(150)], tmp_path / "p.png", tmp_path / "p.gif")
    with Image.open(tmp_path / "p.gif") as gif:
        assert gif.n_frames == 40
        gif.seek(39)
        assert np.asarray(gif.convert("L")).max() == 149  # the last epoch's grid closes the animation
