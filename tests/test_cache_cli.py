"""`dcgan-rt cache` lists the cache root by kind with sizes and clears all or part of it.

The decoded-data-set entry is a real one (load_dataset on a tiny folder); the other kinds
are files at the places their writers use (fid/, ort-tensorrt/, the TensorRT timing cache,
the digit classifier), sized so the listing's numbers can be checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import assert_clean_error, run_cli
from dcgan_rt.train.data import load_dataset


@pytest.fixture
def filled(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("DCGAN_RT_CACHE", str(root))
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    load_dataset(str(folder), 16, 3, crop=0)
    sizes = {"fid/mnist-5k-32px-1ch-n5000-abc.npz": 3000, "ort-tensorrt/0123abcd/model_ctx.engine": 7000,
             "tensorrt-11.0-sm90.timing-cache": 500, "digits-32px-v3.safetensors": 1200,
             "datasets/MNIST/raw/train-images-idx3-ubyte": 800}
    for name, size in sizes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0" * size)
    (root / "my-notes.txt").write_text("not dcgan-rt's: never listed nor removed")
    return root


def _listing(root: Path) -> dict:
    proc = run_cli("cache", "--json", env={"DCGAN_RT_CACHE": str(root)}, check=True)
    return json.loads(proc.stdout)


def test_cache_lists_every_kind_with_its_size(filled):
    listing = _listing(filled)
    kinds = listing["kinds"]
    assert listing["root"] == str(filled)
    assert kinds["datasets"]["bytes"] >= 4 * 3 * 16 * 16 and kinds["datasets"]["files"] >= 2  # images + meta
    assert (kinds["fid"]["bytes"], kinds["engines"]["bytes"], kinds["classifiers"]["bytes"],
            kinds["downloads"]["bytes"]) == (3000, 7500, 1200, 800)
    assert listing["total_bytes"] == sum(k["bytes"] for k in kinds.values())
    table = run_cli("cache", env={"DCGAN_RT_CACHE": str(filled)}, check=True).stdout
    for kind in ("datasets", "downloads", "engines", "fid", "classifiers", "total"):
        assert kind in table
    assert "7.3 KiB" in table and "KB" not in table  # the engines row, in one byte style


def test_cache_clear_by_kind_and_everything_only_with_yes(filled):
    env = {"DCGAN_RT_CACHE": str(filled)}
    proc = run_cli("cache", "clear", "--kind", "datasets", "--kind", "fid", env=env, check=True)
    assert "cleared datasets" in proc.stdout and "cleared fid: 2.9 KiB" in proc.stdout
    kinds = _listing(filled)["kinds"]
    assert kinds["datasets"]["bytes"] == kinds["fid"]["bytes"] == 0 and kinds["engines"]["bytes"] == 7500

    assert_clean_error(run_cli("cache", "clear", env=env), 2, "needs --yes", "--kind")
    assert _listing(filled)["kinds"]["engines"]["bytes"] == 7500  # nothing removed
    assert_clean_error(run_cli("cache", "clear", "--kind", "engine", env=env), 2,
                       "'engine' is not a cache kind", "datasets, downloads, engines, fid, classifiers")

    run_cli("cache", "clear", "--yes", env=env, check=True)
    assert _listing(filled)["total_bytes"] == 0
    assert (filled / "my-notes.txt").is_file()  # a DCGAN_RT_CACHE shared with other files keeps them


def test_openvino_compiles_into_the_cache_once_and_generate_reuses_it(tiny_onnx, tmp_path):
    """The OpenVINO backend keeps its compiled model under the cache root, one folder per
    file content; a second generate imports it (the blob is not rewritten) and writes the same bytes."""
    from dcgan_rt.digest import sha256_file

    root = tmp_path / "cache"
    env = {"DCGAN_RT_CACHE": str(root)}
    args = ("generate", tiny_onnx, "-n", "40", "--backend", "openvino", "--format", "npy")
    run_cli(*args, "--out", tmp_path / "first", env=env, check=True)
    kinds = _listing(root)["kinds"]
    assert kinds["openvino"]["files"] >= 1 and kinds["openvino"]["bytes"] > 0
    blobs = {p: p.stat().st_mtime_ns for p in (root / "openvino").rglob("*") if p.is_file()}
    assert {p.relative_to(root).parts[1] for p in blobs} == {sha256_file(tiny_onnx)}

    run_cli(*args, "--out", tmp_path / "second", env=env, check=True)
    assert {p: p.stat().st_mtime_ns for p in (root / "openvino").rglob("*") if p.is_file()} == blobs
    first, second = (sorted((tmp_path / d).glob("*.npy")) for d in ("first", "second"))
    assert first and [p.read_bytes() for p in first] == [p.read_bytes() for p in second]

    run_cli("cache", "clear", "--kind", "openvino", env=env, check=True)
    assert _listing(root)["kinds"]["openvino"]["bytes"] == 0
