"""`dcgan-rt generate`: files, formats, manifest, resume, refusals and bad input, through the real CLI."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import assert_clean_error, run_cli
from dcgan_rt.backends import select_backend
from dcgan_rt.latents import latents
from dcgan_rt.lock import OutputLock


def reference_images(model, seed, indices, backend="auto"):
    """What image i of seed S must be: the backend on z(S, i), one batch."""
    with select_backend(model, backend) as b:
        return b.images(latents(seed, indices, b.z_dim))


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[:, :, None] if a.ndim == 2 else a


def png_names(out) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.suffix == ".png" and p.name != "preview.png")


def test_png_files_manifest_preview_and_rerun_skips(tiny_onnx, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("generate", tiny_onnx, "-n", 70, "--out", out, "--batch-size", 16, check=True)
    assert "images/s" in proc.stdout

    names = png_names(out)
    assert names == [f"{i:09d}.png" for i in range(70)]
    got = np.stack([read_png(out / n) for n in names])
    assert got.shape == (70, 16, 16, 1)
    assert np.array_equal(got, reference_images(tiny_onnx, 0, range(70)))

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["count"] == 70 and manifest["seed"] == 0
    assert manifest["model"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert manifest["format"] == "png" and manifest["precision"] == "fp32"
    with select_backend(tiny_onnx) as auto:  # the backend auto picks here, named in the manifest and the summary
        assert manifest["backend"] == auto.name and auto.name in proc.stdout
    assert manifest["image"] == {"height": 16, "width": 16, "channels": 1, "dtype": "uint8"}

    preview = read_png(out / "preview.png")  # the first 64 images, 8 per row, 2 px apart
    assert preview.shape == (8 * 18 + 2, 8 * 18 + 2, 1)
    assert np.array_equal(preview[2 + 18 : 2 + 18 + 16, 2 : 2 + 16], got[8])

    before = {n: (out / n).stat().st_mtime_ns for n in names}
    again = run_cli("generate", tiny_onnx, "-n", 70, "--out", out, "--batch-size", 16, check=True)
    assert "nothing new" in again.stdout.lower()
    assert {n: (out / n).stat().st_mtime_ns for n in names} == before


def test_npy_shards_and_index_read_back(tiny_onnx, tmp_path):
    out = tmp_path / "npy"
    proc = run_cli("generate", tiny_onnx, "-n", 1100, "--start", 500, "--seed", 7, "--out", out,
                   "--format", "npy", "--save-latents", check=True)
    assert "batch size auto:" in proc.stdout  # the default measures and says what it picked

    index = json.loads((out / "index.json").read_text())
    assert [(s["images"], s["first_index"], s["count"]) for s in index["shards"]] == [
        ("images-000000.npy", 500, 500), ("images-000001.npy", 1000, 600)]
    images = np.concatenate([np.load(out / s["images"]) for s in index["shards"]])
    lat = np.concatenate([np.load(out / s["latents"]) for s in index["shards"]])
    assert images.dtype == np.uint8 and images.shape == (1100, 16, 16, 1)
    assert np.array_equal(images, reference_images(tiny_onnx, 7, range(500, 1600)))
    assert np.array_equal(lat, latents(7, range(500, 1600), 16))
    assert json.loads((out / "manifest.json").read_text())["images_per_file"] == 1000


def test_tar_shards_are_webdataset_samples(tiny_onnx, tmp_path):
    out = tmp_path / "tar"
    run_cli("generate", tiny_onnx, "-n", 1003, "--out", out, "--format", "tar", "--save-latents",
            "--batch-size", 64, check=True)
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(out / "shard-000001.tar") as tar:
        names = tar.getnames()
        assert names == ["000001000.png", "000001000.npy", "000001001.png", "000001001.npy",
                         "000001002.png", "000001002.npy"]
        png = read_png(io.BytesIO(tar.extractfile("000001002.png").read()))
        z = np.load(io.BytesIO(tar.extractfile("000001002.npy").read()))
    assert np.array_equal(png, reference_images(tiny_onnx, 0, [1002])[0])
    assert np.array_equal(z, latents(0, [1002], 16)[0])
    with tarfile.open(out / "shard-000000.tar") as tar:
        assert len(tar.getnames()) == 2000


def test_other_seed_or_model_refused_unless_overwrite(tiny_onnx, tmp_path):
    out = tmp_path / "out"
    run_cli("generate", tiny_onnx, "-n", 12, "--out", out, check=True)
    manifest = (out / "manifest.json").read_text()

    proc = run_cli("generate", tiny_onnx, "-n", 12, "--seed", 1, "--out", out)
    assert_clean_error(proc, 1, "seed 0", "--overwrite")
    proc = run_cli("generate", tiny_onnx, "-n", 12, "--out", out, "--format", "npy")
    assert_clean_error(proc, 1, "format png", "--overwrite")
    import onnx

    other = onnx.load(tiny_onnx)  # another export: other bytes, no shared provenance
    other.doc_string = "retrained"
    onnx.save(other, tmp_path / "other.onnx")
    proc = run_cli("generate", tmp_path / "other.onnx", "-n", 12, "--out", out)
    assert_clean_error(proc, 1, "weights sha256", "--overwrite")
    assert (out / "manifest.json").read_text() == manifest  # refusals leave DIR alone

    run_cli("generate", tiny_onnx, "-n", 5, "--seed", 1, "--out", out, "--overwrite", check=True)
    assert png_names(out) == [f"{i:09d}.png" for i in range(5)]
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert np.array_equal(read_png(out / "000000004.png"), reference_images(tiny_onnx, 1, [4])[0])


def test_non_empty_directory_without_manifest_is_refused(tiny_onnx, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    proc = run_cli("generate", tiny_onnx, "-n", 3, "--out", out)
    assert_clean_error(proc, 1, "not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["holiday.jpg"]


def test_second_writer_is_refused_while_the_first_holds_the_lock(tiny_onnx, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):  # what a running `generate` holds
        proc = run_cli("generate", tiny_onnx, "-n", 3, "--out", out)
        assert_clean_error(proc, 1, "being written by another")
        assert not list(out.glob("*.png")) and not (out / "manifest.json").exists()
    with OutputLock(out, shard=0, num_shards=2):  # a running shard 0/2
        assert_clean_error(run_cli("generate", tiny_onnx, "-n", 3, "--out", out), 1, "being written")
        assert_clean_error(run_cli("generate", tiny_onnx, "-n", 3, "--out", out, "--shard", "0/2"),
                           1, "shard 0/2", "already being written")
        # other shards of the same job run side by side
        proc = run_cli("generate", tiny_onnx, "-n", 3, "--out", out, "--shard", "1/2", check=True)
        assert "waiting for shard(s) 0" in proc.stdout
    assert (out / "manifest.shard-1-of-2.json").exists() and not (out / "manifest.json").exists()


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["-n", "0"], 2, "-n must be"),
        (["-n", "-5"], 2, "-n must be"),
        (["-n", "4", "--shard", "3/2"], 2, "--shard 3/2"),
        (["-n", "4", "--format", "gif"], 2, "unknown --format 'gif'"),
        (["-n", "4", "--batch-size", "0"], 2, "--batch-size"),
        (["-n", "4", "MISSING"], 1, "not found"),
        (["-n", "4", "UNWRITABLE"], 1, "cannot create --out"),
    ],
    ids=["n0", "n-5", "shard3of2", "format", "batch0", "missing-model", "unwritable-out"],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tiny_onnx, tmp_path, args, code, needle):
    out = tmp_path / "out"
    model = tiny_onnx
    if "MISSING" in args:
        args.remove("MISSING")
        model = tmp_path / "nope.onnx"
    if "UNWRITABLE" in args:
        args.remove("UNWRITABLE")
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / "out"  # a path under a regular file can never be created
    proc = run_cli("generate", model, "--out", out, *args)
    assert_clean_error(proc, code, needle)
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr
    assert not out.exists()
