"""Crashes, Ctrl-C, a full disk and a second writer: finished work is never lost.

`generate` and `train` run as real processes and are stopped at seeded random
points, alternately by SIGINT (Ctrl-C) and SIGKILL (a crash, the OOM killer, a
pulled plug as far as the process can tell). After every interruption the output
is checked: every file under a final name is complete (for generate, byte-identical
to what an uninterrupted run writes), the manifest / checkpoint loads, and nothing
finished went missing. Then a plain re-run finishes the job, and the result is
compared with an uninterrupted run made side by side. The training test also fills
the disk at a checkpoint (RLIMIT_FSIZE, see tests/test_full_disk.py) before it
resumes, and starts two trainings on one runs/ folder at once.

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

from conftest import as_in_a_terminal, assert_clean_error, job_pngs, job_preview, run_cli
from dcgan_rt.backends import select_backend
from dcgan_rt.latents import latent_range

SEED = 20240607  # the loops' random delays and progress points
N_IMAGES = 1500
BATCH = 10  # few images in flight when a signal lands, so each run stops near its chosen point
INTERRUPTIONS = 8


def start_cli(*args, cwd: Path | None = None) -> subprocess.Popen:
    """`dcgan-rt ARGS` as a background process (as conftest.run_cli runs it, without waiting)."""
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]
    # One torch thread: cheaper on a shared 2-core machine, and the same for every run compared.
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "DCGAN_RT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd + [str(a) for a in args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _pngs(out: Path) -> set[str]:
    return {p.name for p in out.glob("[0-9]*.png")}


class GenerateChecker:
    """What an uninterrupted `generate -n N_IMAGES --seed S` must leave, byte for byte."""

    def __init__(self, model: Path, seed: int):
        with select_backend(model, "onnxruntime") as backend:
            images = backend.images(latent_range(seed, 0, N_IMAGES, backend.z_dim))
        self.pngs = {f"{i:09d}.png": data for i, data in enumerate(job_pngs(model, seed, images))}
        self.preview = job_preview(model, seed, images)

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
    # Either way the signal comes no later than a random progress point, so a fast machine that
    # starts up in a blink still leaves the final re-run work to do.
    target = done + rng.randint(1, max(1, (N_IMAGES - done) // 4))
    if rng.random() < 0.4:
        deadline = time.monotonic() + rng.uniform(0.05, 1.5)
    else:
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


# -- train ------------------------------------------------------------------------------------------------------

TRAIN_INTERRUPTIONS = 6
TRAIN_STEPS = 160  # 40 epochs of 4 steps: a checkpoint every 4 steps, far more than the loop can reach


def image_folder(folder: Path, count: int = 64) -> Path:
    """A folder of 16x16 grayscale PNGs to train on (4 steps per epoch at batch 16)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def train_args(data: Path, steps: int = TRAIN_STEPS) -> list:
    return ["train", "--data", data, "--steps", steps, "--img-resolution", 16, "--img-channels", 1, "--g-width", 8,
            "--d-width", 8, "--z-dim", 16, "--code-dim", 4, "--batch-size", 16, "--device", "cpu", "--seed", 1,
            "--snapshot-kimg", 0]


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.glob("[0-9]*-*") if p.is_dir()) if runs.exists() else []


def temp_files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in [*run.glob(".*.tmp"), *run.glob("*/.*.tmp")]}


def check_run_dir(run: Path, clean: bool, temps_before: set[str] = frozenset()) -> tuple[int, list[str]]:
    """(checkpoint step or -1, problems): every file under a final name must load; with `clean`
    (Ctrl-C, or a finished run) the log is whole and no new temp file is left."""
    from PIL import Image

    from dcgan_rt.train.checkpoint import load_checkpoint
    from dcgan_rt.train.release import load_generator

    problems, step = [], -1
    try:
        if (run / "checkpoint.pt").exists():
            step = int(load_checkpoint(run)["step"])
        if (run / "generator.safetensors").exists():
            load_generator(run)
        if (run / "train_config.json").exists():
            json.loads((run / "train_config.json").read_text())
        for png in [*run.glob("*.png"), *run.glob("samples/*.png")]:
            with Image.open(png) as im:
                im.load()
    except Exception as exc:  # any failure to load is the finding
        problems.append(f"{run.name}: {type(exc).__name__}: {exc}")
    if (run / "metrics.jsonl").exists():
        lines = (run / "metrics.jsonl").read_text().splitlines()
        # An append-only log: a crash may cut its last line short (readers skip it, a resume rewrites it).
        for line in lines if clean else lines[:-1]:
            try:
                json.loads(line)
            except ValueError:
                problems.append(f"{run.name}: metrics.jsonl has a broken line {line!r}")
    temps = temp_files(run) - set(temps_before)
    if clean and temps:
        problems.append(f"{run.name}: temp files left: {sorted(temps)}")
    return step, problems


def _wait_for_new_epoch(proc: subprocess.Popen, runs: Path, rng: random.Random, seconds: float = 180) -> bool:
    """Until the next sample grid appears (the checkpoint is written right after it) or `seconds`
    pass; after a new grid, a bit more. True if a new grid appeared."""
    def grids() -> int:
        return sum(1 for _ in runs.glob("*/samples/epoch_*.png")) if runs.exists() else 0

    start, deadline = grids(), time.monotonic() + seconds
    while proc.poll() is None and grids() <= start and time.monotonic() < deadline:
        time.sleep(0.01)
    if grids() <= start:
        return False
    time.sleep(rng.uniform(0.0, 0.1))  # while that epoch's checkpoint and release are being written
    return True


def test_train_survives_sigint_sigkill_and_a_full_disk_and_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file
    from test_full_disk import run_cli_limited

    from dcgan_rt.train.checkpoint import load_checkpoint

    data = image_folder(tmp_path / "images")
    ref_runs, runs = tmp_path / "reference", tmp_path / "runs"
    # Two trainings started together on one runs/ folder: the uninterrupted reference and a short one.
    reference = start_cli(*train_args(data), "--out", ref_runs)
    neighbour = start_cli(*train_args(data, steps=4), "--out", ref_runs)

    rng = random.Random(SEED)
    steps: dict[str, int] = {}
    tried = lost = 0
    for k in range(TRAIN_INTERRUPTIONS):
        sig = signal.SIGINT if k % 2 == 0 else signal.SIGKILL
        resumable = [r for r in run_dirs(runs) if (r / "checkpoint.pt").exists()]
        args = ["train", "--resume", resumable[-1]] if resumable else [*train_args(data), "--out", runs]
        temps_before = {r.name: temp_files(r) for r in run_dirs(runs)}  # a SIGKILL's leftovers, if any
        proc = start_cli(*args)
        # Mostly still importing torch or loading the data, or else just after a new epoch; never
        # later than one epoch, so a fast machine does not finish the job between interruptions.
        _wait_for_new_epoch(proc, runs, rng, rng.uniform(0.05, 1.5) if rng.random() < 0.4 else 180)
        hit = proc.poll() is None
        if hit:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
        tried += hit
        if sig == signal.SIGINT and hit:
            assert proc.returncode in (130, -signal.SIGINT), stderr
        problems = []
        for run in run_dirs(runs):
            step, found = check_run_dir(run, clean=sig == signal.SIGINT, temps_before=temps_before.get(run.name, ()))
            if step < steps.get(run.name, -1):
                found.append(f"{run.name}: checkpoint went back from step {steps[run.name]} to {step}")
            steps[run.name] = step
            problems += found
        lost += bool(problems)
        assert not problems, f"after {signal.Signals(sig).name} #{k}: {problems}"
    print(f"\ntrain: interruptions: {tried} tried, {lost} lost data; checkpoints at steps {steps}")
    assert tried >= TRAIN_INTERRUPTIONS - 1
    resumable = [r for r in run_dirs(runs) if (r / "checkpoint.pt").exists()]
    assert resumable and max(steps.values()) < TRAIN_STEPS, "the loop finished the job: raise TRAIN_STEPS"
    done = resumable[-1]

    # A full disk at the next checkpoint (~160 KB; the config and sample grid written before it are far
    # smaller): one clear error, the previous checkpoint and release untouched, no temp file.
    earlier = {name: (done / name).read_bytes() for name in ("checkpoint.pt", "generator.safetensors")}
    proc = run_cli_limited("train", "--resume", done, max_file_bytes=100_000)
    assert_clean_error(proc, 1, "cannot write", "checkpoint.pt", "the previous checkpoint is kept",
                       f"dcgan-rt train --resume {done}")
    assert {name: (done / name).read_bytes() for name in earlier} == earlier
    assert check_run_dir(done, clean=True, temps_before=set())[1] == []

    final = start_cli("train", "--resume", done)  # space is back
    _, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr
    assert check_run_dir(done, clean=True)[1] == []

    assert reference.wait(timeout=600) == 0, reference.stderr.read()
    assert neighbour.wait(timeout=600) == 0, neighbour.stderr.read()
    made = run_dirs(ref_runs)
    assert len(made) == 2 and made[0].name != made[1].name  # distinct run directories, both complete
    totals = {json.loads((r / "train_config.json").read_text())["total_steps"]: r for r in made}
    assert sorted(totals) == [4, TRAIN_STEPS]
    ref = totals[TRAIN_STEPS]
    assert (ref_runs / "latest").resolve() in {r.resolve() for r in made}

    # The interrupted-and-resumed run ends with exactly the weights of the uninterrupted one.
    a, b = load_checkpoint(ref), load_checkpoint(done)
    assert a["step"] == b["step"] == TRAIN_STEPS
    for net in ("G", "D"):
        for key in a[net]:
            assert np.array_equal(a[net][key].numpy(), b[net][key].numpy()), f"{net}.{key} differs"
    wa, wb = load_file(str(ref / "generator.safetensors")), load_file(str(done / "generator.safetensors"))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
