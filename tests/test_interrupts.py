"""Crashes, Ctrl-C and a second writer: finished work is never lost, nothing half-written looks valid.

`generate` (and `train`, once its command exists) is run as a real process and
stopped at seeded random points, alternately by SIGINT (Ctrl-C) and SIGKILL (a
crash, the OOM killer, a pulled plug as far as the process can tell). After every
interruption the output directory is checked: every file under a final name is
complete and byte-identical to what an uninterrupted run writes, the manifest /
checkpoint loads, and no finished file went missing. Then a plain re-run finishes
the job, and its files are compared with those of an uninterrupted run.

Each loop prints "interruptions: N tried, M lost data" (pytest -s shows it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from dcgan_rt.backends import select_backend
from dcgan_rt.images import encode_png, encode_pngs, make_grid
from dcgan_rt.latents import latent_range

SEED = 20240607  # the loops' random delays and progress points
N_IMAGES = 1500
BATCH = 50
INTERRUPTIONS = 8


def start_cli(*args, cwd: Path | None = None) -> subprocess.Popen:
    """`dcgan-rt ARGS` as a background process (as conftest.run_cli runs it, without waiting)."""
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DCGAN_RT_OFFLINE": "1"}
    return subprocess.Popen(cmd + [str(a) for a in args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _pngs(out: Path) -> set[str]:
    return {p.name for p in out.glob("[0-9]*.png")}


class GenerateChecker:
    """What an uninterrupted `generate -n N_IMAGES --seed S` must leave, byte for byte."""

    def __init__(self, model: Path, seed: int):
        with select_backend(model, "onnxruntime") as backend:
            images = backend.images(latent_range(seed, 0, N_IMAGES, backend.z_dim))
        self.pngs = {f"{i:09d}.png": data for i, data in enumerate(encode_pngs(images))}
        self.preview = encode_png(make_grid(images[:64], 8))

    def check(self, out: Path, must_keep: set[str]) -> tuple[set[str], list[str]]:
        """(the finished images now in out, what is wrong there)."""
        problems = []
        if not out.exists():
            return set(), problems
        done = set()
        for entry in os.scandir(out):
            name = entry.name
            if name in self.pngs:
                if Path(entry.path).read_bytes() == self.pngs[name]:
                    done.add(name)
                else:
                    problems.append(f"{name} is damaged or wrong")
            elif name == "preview.png" and Path(entry.path).read_bytes() != self.preview:
                problems.append("preview.png is damaged or wrong")
            elif name == "manifest.json":
                try:
                    manifest = json.loads(Path(entry.path).read_text())
                    assert manifest["kind"] == "dcgan-rt/generated-images" and manifest["count"] == N_IMAGES
                except (ValueError, KeyError, AssertionError) as exc:
                    problems.append(f"manifest.json does not load ({exc!r})")
            elif not (_is_temp(name) or name.startswith(".dcgan-rt.") or name == "preview.png"):
                problems.append(f"unexpected file {name}")
        lost = must_keep - done
        if lost:
            problems.append(f"{len(lost)} finished images went missing, e.g. {sorted(lost)[:3]}")
        return done, problems


def _signal_at_random_point(proc: subprocess.Popen, out: Path, sig: int, rng: random.Random, done: int) -> bool:
    """Send `sig` after a random delay (often during start-up) or at a random progress point;
    True if the process was still running when it arrived."""
    if rng.random() < 0.4:
        deadline = time.monotonic() + rng.uniform(0.05, 1.5)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    else:
        target = done + rng.randint(1, max(1, (N_IMAGES - done) // 3))
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and len(_pngs(out)) >= target:
                break
            time.sleep(0.005)
    running = proc.poll() is None
    if running:
        proc.send_signal(sig)
    proc.communicate(timeout=120)
    return running


def test_generate_loses_nothing_across_sigint_and_sigkill(tiny_onnx, tmp_path):
    seed = 3
    args = ["generate", tiny_onnx, "-n", N_IMAGES, "--seed", seed, "--batch-size", BATCH]
    reference = start_cli(*args, "--out", tmp_path / "uninterrupted")
    checker = GenerateChecker(tiny_onnx, seed)
    out = tmp_path / "interrupted"
    rng = random.Random(SEED)
    done: set[str] = set()
    tried = lost = 0
    for k in range(INTERRUPTIONS):
        sig = signal.SIGINT if k % 2 == 0 else signal.SIGKILL
        proc = start_cli(*args, "--out", out)
        hit = _signal_at_random_point(proc, out, sig, rng, len(done))
        tried += hit
        if hit and sig == signal.SIGINT:  # Ctrl-C after start-up: a clean exit, code 130
            assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, proc.stderr)
        now, problems = checker.check(out, done)
        lost += bool(problems)
        assert not problems, f"after {signal.Signals(sig).name} #{k}: {problems}"
        done = now
    print(f"\ngenerate: interruptions: {tried} tried, {lost} lost data; {len(done)} of {N_IMAGES} images "
          "were finished before the final run")
    assert tried >= INTERRUPTIONS - 2, "the job finished before it could be interrupted: raise N_IMAGES"
    assert len(done) < N_IMAGES

    final = run_cli(*args, "--out", out, check=True)
    assert "already there" in final.stdout or not done
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    got, problems = checker.check(out, set(checker.pngs))
    assert not problems and got == set(checker.pngs)
    a, b = tmp_path / "uninterrupted", out
    names = sorted(n for n in os.listdir(a) if not n.startswith("."))
    assert names == sorted(n for n in os.listdir(b) if not n.startswith("."))  # no temp file left either
    assert not [n for n in os.listdir(b) if _is_temp(n)]
    for name in names:
        if name != "manifest.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert mb["complete"] is True and mb["images_done"] == N_IMAGES
    for key in ("model", "seed", "start", "count", "format", "image", "precision"):
        assert ma[key] == mb[key], key
    assert len(mb["runs"]) > len(ma["runs"])  # the interrupted runs are on record


def test_a_second_generate_on_the_same_directory_is_refused(tiny_onnx, tmp_path):
    """The first one is frozen (SIGSTOP) while it holds the directory, so the race is not left to timing."""
    out = tmp_path / "out"
    first = start_cli("generate", tiny_onnx, "-n", 600, "--batch-size", 20, "--out", out)
    deadline = time.monotonic() + 120
    while not (out / "manifest.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first run ended before the second started"
        second = run_cli("generate", tiny_onnx, "-n", 600, "--batch-size", 20, "--out", out)
        assert_clean_error(second, 1, "being written by another dcgan-rt generate", f"pid {first.pid}",
                           "choose another --out")
        other = run_cli("generate", tiny_onnx, "-n", 600, "--seed", 9, "--out", out)  # another job: same answer
        assert_clean_error(other, 1, "being written by another")
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(_pngs(out)) == 600 and json.loads((out / "manifest.json").read_text())["complete"] is True
    again = run_cli("generate", tiny_onnx, "-n", 600, "--batch-size", 20, "--out", out, check=True)
    assert "nothing new" in again.stdout
