"""CAS on digits (train/cas.py, benchmarks/cas_digits.py): the fixed split, the class
folder the GAN trains on, and the score of a (tiny) conditional model, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli
from dcgan_rt.train.cas import HELD_OUT_PER_CLASS, split_mnist_5k
from dcgan_rt.train.data import mnist_5k_arrays

SCRIPT = REPO / "benchmarks" / "cas_digits.py"
TINY = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "16"]


def _script(*args, check=True):
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_split_is_stratified_disjoint_and_fixed():
    train_idx, held_idx = split_mnist_5k()
    _, labels = mnist_5k_arrays()
    assert len(train_idx) == 4000 and len(held_idx) == 1000
    assert not set(train_idx) & set(held_idx)
    assert np.bincount(labels[held_idx], minlength=10).tolist() == [HELD_OUT_PER_CLASS] * 10
    again = split_mnist_5k()
    assert np.array_equal(again[0], train_idx) and np.array_equal(again[1], held_idx)


def test_split_writes_the_training_digits_as_class_folders_and_refuses_an_existing_one(tmp_path):
    out = tmp_path / "digits-4000"
    _script("split", out)
    train_idx, held_idx = split_mnist_5k()
    _, labels = mnist_5k_arrays()
    for digit in range(10):
        names = sorted(p.stem for p in (out / str(digit)).iterdir())
        assert names == [f"{i:05d}" for i in train_idx if labels[i] == digit]  # 400 each, no held-out digit
    proc = _script("split", out, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def tiny_conditional_digits(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    run_cli("train", "--data", "mnist-5k", "--conditional", "--out", out, "--steps", "4", *TINY,
            env={"DCGAN_RT_OFFLINE": "1"}, check=True)
    return out / "latest"


def test_score_reports_cas_against_the_real_trained_classifier(tiny_conditional_digits, tmp_path):
    proc = _script("score", tiny_conditional_digits, "-n", "200", "--classifier-steps", "30",
                   "--json", tmp_path / "cas.json")
    assert "CAS" in proc.stdout and "label fidelity" in proc.stdout
    figures = json.loads((tmp_path / "cas.json").read_text())
    assert figures["num_generated"] == 200 and figures["num_real_train"] == 4000 and figures["num_test"] == 1000
    # 30 steps on real digits already beat chance by far; 4 GAN steps make noise, near chance
    assert figures["real_accuracy"] > 0.5 and figures["cas"] < figures["real_accuracy"]
    assert 0 <= figures["label_fidelity"] <= 1 and figures["ratio"] == figures["cas"] / figures["real_accuracy"]


def test_score_refuses_an_unconditional_model(tmp_path):
    run_cli("train", "--data", "mnist-5k", "--out", tmp_path, "--steps", "2", *TINY, "--code-dim", "4",
            env={"DCGAN_RT_OFFLINE": "1"}, check=True)
    proc = _script("score", tmp_path / "latest", "-n", "20", check=False)
    assert proc.returncode == 2 and "class-conditional" in proc.stderr and "Traceback" not in proc.stderr
