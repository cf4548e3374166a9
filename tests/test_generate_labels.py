"""Labels at generate time: the label rule, --label / --labels-file, labels in every output format."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, make_model_dir, run_cli
from PIL import Image

from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend
from dcgan_rt.batch import Batch
from dcgan_rt.labels import LabelRequest, label_uniforms, make_rule
from dcgan_rt.latents import latents
from dcgan_rt.onnx_card import read_onnx

CLASSES = ["cat", "dog", "owl"]
ATTRS = ["Smiling", "Male", "Eyeglasses"]
JOINT = {"vectors": [[0, 0, 0], [1, 0, 0], [1, 1, 1]], "weights": [0.5, 0.3, 0.2]}


def export(model_dir: Path, out: Path) -> Path:
    from dcgan_rt.export.onnx_export import export_onnx
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(model_dir)
    return export_onnx(g, card, out)


@pytest.fixture(scope="module")
def class_dir(tmp_path_factory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("class_model"), seed=1, labels={"kind": "class", "names": CLASSES},
                          num_classes=3)


@pytest.fixture(scope="module")
def class_onnx(class_dir, tmp_path_factory) -> Path:
    return export(class_dir, tmp_path_factory.mktemp("class_onnx") / "generator.onnx")


@pytest.fixture(scope="module")
def attr_onnx(tmp_path_factory) -> Path:
    model = make_model_dir(tmp_path_factory.mktemp("attr_model"), seed=1,
                           labels={"kind": "attributes", "names": ATTRS, "joint": JOINT}, num_attrs=3)
    return export(model, tmp_path_factory.mktemp("attr_onnx") / "generator.onnx")


def expected_images(onnx_path: Path, seed: int, indices, labels) -> np.ndarray:
    """What image i must be: the model on z(seed, i) and its label, straight through ONNX Runtime."""
    idx = np.asarray(indices, dtype=np.int64)
    with OnnxRuntimeBackend(onnx_path) as backend:
        return backend.images(Batch(idx, latents(seed, idx, backend.z_dim), np.asarray(labels)))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[:, :, None] if a.ndim == 2 else a


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_onnx_takes_z_and_label_and_lists_both(class_onnx, attr_onnx):
    art = read_onnx(class_onnx)
    assert art.io["inputs"] == [{"name": "z", "dtype": "float32", "shape": ["N", 16]},
                                {"name": "label", "dtype": "int64", "shape": ["N"]}]
    assert art.card.labels["names"] == CLASSES
    assert read_onnx(attr_onnx).io["inputs"][1] == {"name": "label", "dtype": "float32", "shape": ["N", 3]}


def test_png_labels_csv_and_images_follow_the_balanced_rule(class_onnx, tmp_path):
    out = tmp_path / "out"
    run_cli("generate", class_onnx, "-n", 10, "--out", out, "--seed", 4, "--batch-size", 3, check=True)
    rows = read_csv(out / "labels.csv")
    assert rows[0] == ["index", "label"]
    assert rows[1:] == [[str(i), CLASSES[i % 3]] for i in range(10)]
    want = expected_images(class_onnx, 4, range(10), np.arange(10) % 3)
    assert np.array_equal(np.stack([read_png(out / f"{i:09d}.png") for i in range(10)]), want)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"]["rule"] == "balanced" and manifest["labels"]["names"] == CLASSES


def test_image_depends_on_seed_index_and_label_only(class_onnx, tmp_path):
    """--label dog: every image is the dog of its latent; where the balanced rule also gave
    dog (i mod 3 == 1), the two runs made the same picture."""
    run_cli("generate", class_onnx, "-n", 9, "--out", tmp_path / "dog", "--label", "dog", check=True)
    run_cli("generate", class_onnx, "-n", 9, "--out", tmp_path / "one", "--label", "1", check=True)
    run_cli("generate", class_onnx, "-n", 9, "--out", tmp_path / "mix", check=True)
    dog = np.stack([read_png(tmp_path / "dog" / f"{i:09d}.png") for i in range(9)])
    assert np.array_equal(dog, expected_images(class_onnx, 0, range(9), np.ones(9, dtype=np.int64)))
    assert np.array_equal(dog, np.stack([read_png(tmp_path / "one" / f"{i:09d}.png") for i in range(9)]))
    for i in range(9):
        same = np.array_equal(dog[i], read_png(tmp_path / "mix" / f"{i:09d}.png"))
        assert same == (i % 3 == 1), i
    assert {r[1] for r in read_csv(tmp_path / "dog" / "labels.csv")[1:]} == {"dog"}


def test_by_class_layout_loads_with_torchvision_image_folder(class_dir, tmp_path):
    from torchvision.datasets import ImageFolder

    out = tmp_path / "tree"
    run_cli("generate", class_dir, "-n", 14, "--out", out, "--layout", "by-class", "--backend", "torch", check=True)
    assert (out / "owl" / "000000011.png").is_file() and not (out / "000000011.png").exists()
    data = ImageFolder(str(out))
    assert data.classes == CLASSES and len(data) == 14
    for path, target in data.samples:
        assert target == int(Path(path).stem) % 3
    # resuming finds the images in their class folders
    again = run_cli("generate", class_dir, "-n", 14, "--out", out, "--layout", "by-class", "--backend", "torch",
                    check=True)
    assert "nothing to do" in again.stdout


def test_npy_labels_per_shard_and_shards_agree_with_one_run(class_onnx, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_cli("generate", class_onnx, "-n", 2100, "--start", 50, "--out", whole, "--format", "npy", check=True)
    for k in (1, 0):
        run_cli("generate", class_onnx, "-n", 2100, "--start", 50, "--out", parts, "--format", "npy",
                "--shard", f"{k}/2", check=True)
    index = json.loads((whole / "index.json").read_text())
    assert [s["labels"] for s in index["shards"]] == ["labels-000000.npy", "labels-000001.npy", "labels-000002.npy"]
    labels = np.concatenate([np.load(whole / s["labels"]) for s in index["shards"]])
    assert labels.dtype == np.int64 and np.array_equal(labels, np.arange(50, 2150) % 3)
    for name in ("labels-000001.npy", "images-000001.npy"):
        assert np.array_equal(np.load(whole / name), np.load(parts / name))
    counts = np.bincount(np.load(whole / "labels-000001.npy"))
    assert counts.max() - counts.min() <= 1  # balanced within every shard


def test_tar_samples_carry_cls_and_json_labels(class_onnx, attr_onnx, tmp_path):
    run_cli("generate", class_onnx, "-n", 5, "--out", tmp_path / "c", "--format", "tar", check=True)
    with tarfile.open(tmp_path / "c" / "shard-000000.tar") as tar:
        assert [m.name for m in tar.getmembers()][:4] == ["000000000.png", "000000000.cls",
                                                        "000000001.png", "000000001.cls"]
        assert [tar.extractfile(f"{i:09d}.cls").read() for i in range(5)] == [b"0", b"1", b"2", b"0", b"1"]
    run_cli("generate", attr_onnx, "-n", 5, "--out", tmp_path / "a", "--format", "tar", "--label",
            "Smiling=1,Male=1", check=True)
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as tar:
        assert json.loads(tar.extractfile("000000003.json").read()) == {"Smiling": 1, "Male": 1, "Eyeglasses": 1}


def test_attribute_labels_follow_the_joint_distribution_and_resume_exactly(attr_onnx, tmp_path):
    from dcgan_rt.model_card import ModelCard

    card = read_onnx(attr_onnx).card
    assert isinstance(card, ModelCard)
    rule = make_rule(card, LabelRequest(), 0, 30000)
    drawn = rule.labels(7, np.arange(30000))
    freq = [np.mean(np.all(drawn == np.asarray(v, np.float32), axis=1)) for v in JOINT["vectors"]]
    assert np.allclose(freq, JOINT["weights"], atol=0.01) and abs(sum(freq) - 1) < 1e-9
    # u(S, i) is its own stream: not the uniform behind z's first component
    assert not np.array_equal(label_uniforms(7, np.arange(5)), label_uniforms(8, np.arange(5)))

    run_cli("generate", attr_onnx, "-n", 60, "--seed", 7, "--out", tmp_path / "all", check=True)
    run_cli("generate", attr_onnx, "-n", 20, "--start", 40, "--seed", 7, "--out", tmp_path / "tail", check=True)
    rows = read_csv(tmp_path / "all" / "labels.csv")
    assert rows[0] == ["index", "Smiling", "Male", "Eyeglasses"]
    assert rows[41:] == read_csv(tmp_path / "tail" / "labels.csv")[1:]
    assert [[int(c) for c in r[1:]] for r in rows[1:]] == drawn[:60].astype(int).tolist()
    male = run_cli("generate", attr_onnx, "-n", 40, "--seed", 7, "--label", "Male=1", "--out", tmp_path / "m",
                      check=True)
    assert male.returncode == 0
    assert {tuple(r[1:]) for r in read_csv(tmp_path / "m" / "labels.csv")[1:]} == {("1", "1", "1")}  # the one with Male


def test_labels_file_round_trips_generates_own_labels_csv(class_onnx, tmp_path):
    run_cli("generate", class_onnx, "-n", 6, "--out", tmp_path / "a", "--label", "owl", check=True)
    run_cli("generate", class_onnx, "-n", 6, "--out", tmp_path / "b", "--labels-file", tmp_path / "a" / "labels.csv",
            check=True)
    for i in range(6):
        assert np.array_equal(read_png(tmp_path / "a" / f"{i:09d}.png"), read_png(tmp_path / "b" / f"{i:09d}.png"))
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("index,label\n0,2\n1,cat\n2,dog\n")
    run_cli("generate", class_onnx, "-n", 3, "--out", tmp_path / "c", "--labels-file", mixed, check=True)
    assert [r[1] for r in read_csv(tmp_path / "c" / "labels.csv")[1:]] == ["owl", "cat", "dog"]


def test_resume_with_other_labels_is_refused(class_onnx, tmp_path):
    out = tmp_path / "out"
    run_cli("generate", class_onnx, "-n", 4, "--out", out, check=True)
    assert_clean_error(run_cli("generate", class_onnx, "-n", 4, "--out", out, "--label", "dog"), 1,
                       "another job's images", "labels balanced (this run: fixed dog)")


def _bad_labels_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


BAD = [
    ("label-on-unconditional", "tiny", lambda p: ["--label", "3"], "needs a conditional model"),
    ("labels-file-on-unconditional", "tiny", lambda p: ["--labels-file", _bad_labels_file(p, "0,1\n")],
     "needs a conditional model"),
    ("unknown-class", "class", lambda p: ["--label", "zebra"], "unknown class; this model's classes are cat, dog, owl"),
    ("class-out-of-range", "class", lambda p: ["--label", "3"], "class index out of range"),
    ("attributes-for-classes", "class", lambda p: ["--label", "Smiling=1"], "this model's labels are classes"),
    ("unknown-attribute", "attr", lambda p: ["--label", "Bald=1"], "unknown attribute"),
    ("attribute-value", "attr", lambda p: ["--label", "Smiling=2"], "each 0 or 1"),
    ("unseen-combination", "attr", lambda p: ["--label", "Smiling=0,Male=1"], "no training image has"),
    ("file-too-short", "class", lambda p: ["--labels-file", _bad_labels_file(p, "index,label\n0,cat\n1,dog\n")],
     "has 2 rows for a job of 4 images"),
    ("file-index-outside", "class", lambda p: ["--labels-file", _bad_labels_file(p, "0,cat\n1,dog\n2,owl\n9,cat\n")],
     "index 9 is outside this job's images 0..3"),
    ("file-bad-class", "class", lambda p: ["--labels-file", _bad_labels_file(p, "0,cat\n1,dog\n2,owl\n3,5\n")],
     "class index out of range"),
    ("by-class-for-attributes", "attr", lambda p: ["--layout", "by-class"], "needs a class-conditional model"),
    ("by-class-npy", "class", lambda p: ["--layout", "by-class", "--format", "npy"], "is for --format png"),
    ("label-and-file", "class", lambda p: ["--label", "cat", "--labels-file", _bad_labels_file(p, "0,1\n")],
     "not both"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_label_input_is_one_clear_error_and_writes_nothing(case, tiny_onnx, class_onnx, attr_onnx, tmp_path):
    _, which, extra, needle = case
    model = {"tiny": tiny_onnx, "class": class_onnx, "attr": attr_onnx}[which]
    out = tmp_path / "out"
    proc = run_cli("generate", model, "-n", 4, "--out", out, *extra(tmp_path))
    assert_clean_error(proc, 2, needle)
    assert len((proc.stdout + proc.stderr).strip().splitlines()) <= 2  # backend line at most, then the error
    assert not out.exists()


def test_export_variants_take_the_label_and_torch_matches_onnx(class_dir, tmp_path):
    out = tmp_path / "export"
    proc = run_cli("export", class_dir, "--out", out, "--fp16", "--uint8", "--no-engine", check=True)
    assert proc.stdout.count("pass") == 4  # fp32, fp16, uint8, fp16-uint8 parity, each with labels
    for name in ("generator.onnx", "generator.fp16.onnx", "generator.uint8.onnx", "generator.fp16.uint8.onnx"):
        assert [s["name"] for s in read_onnx(out / name).io["inputs"]] == ["z", "label"]
    run_cli("generate", class_dir, "-n", 12, "--out", tmp_path / "torch", "--backend", "torch", "--format", "npy",
            check=True)
    run_cli("generate", out / "generator.uint8.onnx", "-n", 12, "--out", tmp_path / "onnx", "--format", "npy",
            check=True)
    a, b = (np.load(tmp_path / d / "images-000000.npy").astype(int) for d in ("torch", "onnx"))
    assert np.abs(a - b).max() <= 1


@pytest.mark.gpu
def test_engine_with_a_two_input_profile_matches_pytorch(require_tensorrt, class_dir, tmp_path):
    from dcgan_rt.export.engine import build_engine, engine_runner
    from dcgan_rt.export.parity import fresh_inputs, reference_images
    from dcgan_rt.export.variants import FP32, export_variants
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(class_dir)
    paths = export_variants(g, card, [FP32], tmp_path)
    build_engine(paths["fp32"], tmp_path / "generator.engine", card, "fp32", "float32-nchw", max_batch=64)
    run = engine_runner(tmp_path / "generator.engine")
    _, inputs = fresh_inputs(100, card, seed=3)  # > max batch: the runner splits it
    expected = reference_images(g, inputs)
    for n in (1, 7, 64, 100):
        assert np.abs(run(inputs[:n]) - expected[:n]).max() <= 1e-4
    out = tmp_path / "out"
    run_cli("generate", tmp_path / "generator.engine", "-n", 9, "--out", out, "--label", "owl", check=True)
    assert np.abs(read_png(out / "000000004.png").astype(int)
                  - expected_images(paths["fp32"], 0, [4], [2])[0].astype(int)).max() <= 1


def _h(x: int) -> int:
    """lowbias32, as docs/latents.md writes it (scalar, Python integers)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


@pytest.mark.parametrize("seed,index,scaled", [(0, 0, 9770061), (0, 1, 3808002), (1, 0, 9063162),
                                               (42, 1234, 13443800)])
def test_label_uniform_matches_the_documented_formula(seed, index, scaled):
    u = (_h(index ^ _h(seed ^ 0x4C41424C)) >> 8) * 2.0**-24
    assert u == label_uniforms(seed, np.array([index]))[0] == scaled * 2.0**-24


def test_info_shows_the_label_input_and_names(class_onnx):
    table = run_cli("info", class_onnx, check=True).stdout
    assert "z: float32 [N, 16], label: int64 [N]" in table and "cat, dog, owl" in table
    described = json.loads(run_cli("info", class_onnx, "--json", check=True).stdout)
    assert described["labels"] == {"kind": "class", "names": CLASSES}
