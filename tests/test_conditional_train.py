"""`dcgan-rt train --conditional`, as a user runs it: class folders, digits, CelebA
attributes, the model card's labels, one grid row per class, exact resume, bad input.

Tiny configs (16 px, widths 8, 48 images, batch 16: three steps an epoch); the CLI runs
in a real subprocess.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import assert_clean_error, run_cli
from dcgan_rt.model_card import ModelCard
from dcgan_rt.train.data import mnist_5k_arrays
from dcgan_rt.train.release import load_generator
from test_faces import CELEBA_ATTRS, _fake_celeba

# --lr-rampdown 0: a ramp-down follows the run's length, so a run resumed to a longer one would differ
TINY = ["--lr-rampdown", "0", "--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "16",
        "--snapshot-kimg", "0"]
ENV = {"DCGAN_RT_OFFLINE": "1"}
CLASSES = {"three": 3, "seven": 7, "zero": 0}  # subfolder name -> the mnist-5k digit it holds


def train(*args, check=True):
    return run_cli("train", *args, env=ENV, timeout=300, check=check)


def _run_dir(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())


@pytest.fixture(scope="module")
def class_dir(tmp_path_factory) -> Path:
    """48 real digits in ImageFolder layout: three class subfolders of 16."""
    folder = tmp_path_factory.mktemp("classes")
    pixels, labels = mnist_5k_arrays()
    for name, digit in CLASSES.items():
        (folder / name).mkdir()
        for k, i in enumerate((labels == digit).nonzero()[0][:16]):
            Image.fromarray(pixels[i]).save(folder / name / f"{k:03d}.png")
    return folder


@pytest.fixture(scope="module")
def two_epochs(class_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    train("--data", class_dir, "--conditional", "--out", out, "--epochs", "2", *TINY)
    return out


def test_a_class_folder_trains_a_conditional_model_named_by_its_subfolders(two_epochs):
    run = _run_dir(two_epochs)
    card = ModelCard.load(run / "generator.json")
    assert card.labels == {"kind": "class", "names": ["seven", "three", "zero"]}  # sorted, as ImageFolder
    assert card.model_config.num_classes == 3 and card.model_config.code_dim == 0  # InfoGAN code off
    assert [i["name"] for i in card.inputs] == ["z", "label"]
    options = json.loads((run / "train_config.json").read_text())["options"]
    assert options["conditional"] is True and options["num_classes"] == 3

    g, _ = load_generator(run)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = g(z[:1].repeat(3, 1), torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, 16, 16) and not torch.equal(images[0], images[1])

    # one row per class, eight columns (grid_size 64), 16 px cells upscaled 4x
    with Image.open(run / "samples" / "epoch_0002.png") as im:
        assert im.size == (4 * (8 * 18 + 2), 4 * (3 * 18 + 2))


def test_conditional_resume_continues_exactly(two_epochs, class_dir, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(_run_dir(two_epochs), half)
    train("--resume", half, "--epochs", "4")
    whole_out = tmp_path / "whole"
    train("--data", class_dir, "--conditional", "--out", whole_out, "--epochs", "4", *TINY)
    whole = _run_dir(whole_out)
    a, b = load_file(whole / "generator.safetensors"), load_file(half / "generator.safetensors")
    assert "label_embed.weight" in a
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (whole, half))
    assert ca["step"] == cb["step"] == 12 and "label_proj.weight" in ca["D"]
    assert all(torch.equal(ca["D"][k], cb["D"][k]) for k in ca["D"])


def test_digits_train_with_an_auxiliary_classifier_d_and_name_the_ten_digits(tmp_path):
    train("--data", "mnist-5k", "--conditional", "--cond-d", "acgan", "--out", tmp_path, "--steps", "3", *TINY)
    run = _run_dir(tmp_path)
    assert ModelCard.load(run / "generator.json").labels == {"kind": "class", "names": [str(d) for d in range(10)]}
    d = torch.load(run / "checkpoint.pt", weights_only=True)["D"]
    assert d["main.5.weight"].shape[0] == 1 + 10  # real/fake logit, then the ten class logits
    with Image.open(run / "samples" / "epoch_0001.png") as im:
        assert im.size[1] == 4 * (10 * 18 + 2)  # ten rows


def test_celeba_attributes_go_into_the_card_with_their_joint_distribution(tmp_path):
    _fake_celeba(tmp_path / "data", n=8)
    train("--data", "celeba", "--data-root", tmp_path / "data", "--conditional", "--attrs", "Smiling,Male,Eyeglasses",
          "--out", tmp_path / "runs", "--steps", "2", "--img-channels", "3", *TINY[:-4], "--batch-size", "4")
    card = ModelCard.load(_run_dir(tmp_path / "runs") / "generator.json")
    labels = card.labels
    assert labels["kind"] == "attributes" and labels["names"] == ["Smiling", "Male", "Eyeglasses"]
    cols = [CELEBA_ATTRS.index(n) for n in labels["names"]]
    vectors = [tuple(int((i * 7 + j) % 3 == 0) for j in cols) for i in range(1, 9)]  # test_faces._attr
    expected = {v: vectors.count(v) / 8 for v in set(vectors)}
    assert {tuple(v): w for v, w in zip(labels["joint"]["vectors"], labels["joint"]["weights"])} == expected
    assert card.model_config.num_attrs == 3 and card.inputs[1]["shape"] == ["N", 3]


@pytest.mark.parametrize("args, needles", [
    (["--data", "FLAT", "--conditional"], ["has no labels", "not in a class subfolder"]),
    (["--data", "mnist-5k", "--attrs", "Smiling", "--code-dim", "4"], ["--attrs", "add --conditional"]),
    (["--data", "mnist-5k", "--conditional", "--attrs", "Smiling"], ["list_attr_celeba.txt"]),
    (["--data", "celeba", "--conditional", "--attrs", "Smiling,Smilling"], ["no attribute 'Smilling'", "Smiling"]),
    (["--data", "celeba", "--conditional"], ["name them with --attrs"]),
    (["--data", "mnist-5k", "--conditional", "--cond-d", "hinge"], ["--cond-d must be one of"]),
], ids=["folder-without-classes", "attrs-without-conditional", "attrs-on-digits", "unknown-attribute",
        "celeba-without-attrs", "bad-cond-d"])
def test_bad_conditional_input_is_one_clear_line_and_writes_nothing(tmp_path, args, needles):
    flat = tmp_path / "flat"
    flat.mkdir()
    pixels, _ = mnist_5k_arrays()
    for i in range(4):
        Image.fromarray(pixels[i]).save(flat / f"{i}.png")
    _fake_celeba(tmp_path / "data", n=4)
    out = tmp_path / "runs"
    args = [str(flat) if a == "FLAT" else a for a in args]
    proc = train(*args, "--data-root", tmp_path / "data", "--out", out, "--steps", "2", *TINY, check=False)
    assert_clean_error(proc, 2, *needles)
    assert len((proc.stdout + proc.stderr).strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
