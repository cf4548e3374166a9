"""Generated images say what they are: every PNG carries text chunks naming the model, seed and
index and saying it is synthetic; manifest.json says the same for every format."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
from PIL import Image

from dcgan_rt.images import encode_pngs
from dcgan_rt.provenance import DIGITAL_SOURCE_TYPE, PngText, Provenance
from conftest import run_cli


def _text(data: bytes) -> dict:
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # chunks after IHDR are read with the image data
        return dict(im.info)


def _says_synthetic(info: dict, manifest: dict, index: int) -> None:
    assert info["dcgan_rt.synthetic"] == "true"
    assert "synthetic" in info["Description"].lower() and "not a photograph" in info["Description"]
    assert info["Software"] == f"dcgan-rt {manifest['tool_version']}"
    assert info["dcgan_rt.model_sha256"] == manifest["model"]["weights_sha256"]
    assert info["dcgan_rt.seed"] == str(manifest["seed"])
    assert info["dcgan_rt.index"] == str(index)
    assert DIGITAL_SOURCE_TYPE in info["XML:com.adobe.xmp"]


def test_png_and_tar_images_carry_model_seed_index_and_synthetic(tiny_onnx, tmp_path):
    out = tmp_path / "png"
    run_cli("generate", tiny_onnx, "-n", 5, "--start", 10, "--seed", 7, "--out", out, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    for i in range(10, 15):
        info = _text((out / f"{i:09d}.png").read_bytes())
        _says_synthetic(info, manifest, i)
        assert "dcgan_rt.label" not in info  # unconditional model
    assert _text((out / "preview.png").read_bytes())["dcgan_rt.synthetic"] == "true"
    assert manifest["provenance"]["synthetic"] is True
    assert manifest["provenance"]["digital_source_type"] == DIGITAL_SOURCE_TYPE

    tar_out = tmp_path / "tar"
    run_cli("generate", tiny_onnx, "-n", 3, "--seed", 2, "--out", tar_out, "--format", "tar", check=True)
    tar_manifest = json.loads((tar_out / "manifest.json").read_text())
    with tarfile.open(tar_out / "shard-000000.tar") as tar:
        _says_synthetic(_text(tar.extractfile("000000002.png").read()), tar_manifest, 2)


def test_npy_manifest_says_synthetic(tiny_onnx, tmp_path):
    out = tmp_path / "npy"
    run_cli("generate", tiny_onnx, "-n", 4, "--out", out, "--format", "npy", check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    prov = manifest["provenance"]
    assert prov["synthetic"] is True and prov["made_by"].startswith("dcgan-rt ")
    assert "dcgan_rt.index" in prov["png_text"]


def test_labels_and_pixels_read_back():
    """A class label and an attribute vector travel per image; the pixels are untouched."""
    text = PngText(Provenance(model_sha256="a" * 64, seed=3))
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    labels = [7, np.array([0, 1, 1]), None]
    pngs = encode_pngs(images, text=text.for_batch((4, 5, 6), labels), common_text=text.constant)
    infos = [_text(p) for p in pngs]
    assert infos[0]["dcgan_rt.label"] == "7" and infos[1]["dcgan_rt.label"] == "0,1,1"
    assert "dcgan_rt.label" not in infos[2] and infos[2]["dcgan_rt.index"] == "6"
    assert all(info["dcgan_rt.model_sha256"] == "a" * 64 and info["dcgan_rt.seed"] == "3" for info in infos)
    for png, image in zip(pngs, images):
        with Image.open(io.BytesIO(png)) as im:
            assert np.array_equal(np.asarray(im), image)
