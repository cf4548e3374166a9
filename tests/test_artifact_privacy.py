"""A model trained on a folder does not tell the world where its maker keeps files.

The real CLI trains a tiny run on a folder under a distinctive temporary path and exports
it; the path must appear nowhere in generator.json, generator.safetensors or the ONNX
file's metadata, only in the run's own train_config.json. The card names the folder
and carries a digest of its listing that a copy of the folder elsewhere reproduces.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
from PIL import Image

from conftest import assert_clean_error, run_cli
from export_helpers import copy_run
from dcgan_rt.train.data import mnist_5k_arrays
from dcgan_rt.train.decoded_cache import FolderListing, listing_digest

TINY = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--code-dim", "4",
        "--batch-size", "16", "--steps", "2"]


def test_card_and_onnx_carry_the_folder_name_and_digest_never_its_path(tmp_path):
    secret = tmp_path / "home" / "alice-private-photos-7f3a"
    folder = secret / "faces"
    (folder / "more").mkdir(parents=True)
    pixels, _ = mnist_5k_arrays()
    for i in range(32):
        Image.fromarray(pixels[i * 100]).save((folder if i % 2 else folder / "more") / f"{i:03d}.png")
    env = {"DCGAN_RT_OFFLINE": "1", "DCGAN_RT_CACHE": str(tmp_path / "cache")}
    run_cli("train", "--data", folder, "--out", tmp_path / "runs", *TINY, env=env, timeout=300, check=True)
    run = (tmp_path / "runs" / "latest").resolve()
    run_cli("export", run, "--out", run / "export", "--no-engine", env=env, timeout=300, check=True)

    card = json.loads((run / "generator.json").read_text())
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "faces")
    assert card["dataset"] == "faces"
    assert card["dataset_digest"] == listing_digest(FolderListing.scan(copy))

    model = onnx.load(str(run / "export" / "generator.onnx"))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["dcgan_rt.model_card"])["dataset_digest"] == card["dataset_digest"]
    for text in ((run / "generator.json").read_text(), json.dumps(metadata),
                 (run / "generator.safetensors").read_bytes().decode("latin-1")):
        assert str(tmp_path) not in text and "alice-private-photos" not in text

    config = json.loads((run / "train_config.json").read_text())  # the maker's own record keeps it
    assert config["dataset"]["path"] == str(folder) and config["dataset"]["digest"] == card["dataset_digest"]

    # evaluate finds the data of its own run directory (also for its exported ONNX file);
    # a shared model alone asks for --data
    args = ("--metrics", "memorization", "-n", "8", "--json")
    proc = run_cli("evaluate", run / "export" / "generator.onnx", *args, env=env, timeout=300, check=True)
    result = json.loads(proc.stdout)
    assert result["num_real"] == 32 and result["data"] == "faces"
    shared = copy_run(run, tmp_path / "shared")
    assert_clean_error(run_cli("evaluate", shared, *args, env=env, timeout=300), 2, "trained on 'faces'", "--data")
