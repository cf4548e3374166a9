"""The backend registry is the one table select_backend, bench and doctor read."""

from __future__ import annotations

import json

from conftest import run_cli
from dcgan_rt.backends import BACKEND_NAMES
from dcgan_rt.backends.registry import BACKENDS, SELECTABLE, backends_for
from dcgan_rt.bench import BENCH_BACKENDS, generator_layers
from dcgan_rt.config import ModelConfig
from export_helpers import blocker


def test_every_consumer_lists_the_registry_rows():
    assert BACKEND_NAMES == ("auto", *SELECTABLE) == ("auto", "tensorrt", "onnxruntime", "openvino", "torch")
    assert set(BENCH_BACKENDS) == set(BACKENDS)
    assert [s.name for s in backends_for("onnx")] == ["onnxruntime", "openvino", "onnxruntime-cuda",
                                                      "onnxruntime-tensorrt"]
    for spec in BACKENDS.values():
        assert spec.extra in ("cpu", "gpu", "openvino", "train") and spec.artifact in ("onnx", "engine", "safetensors")


def test_doctor_and_bench_say_why_a_backend_is_unavailable_in_the_registrys_words(tiny_onnx, tmp_path):
    env = blocker(tmp_path, "openvino")
    doctor = json.loads(run_cli("doctor", "--json", env=env, check=True).stdout)
    assert set(doctor["backends"]) == set(BACKENDS)
    assert doctor["backends"]["openvino"] == "unavailable: not installed (pip install 'dcgan-rt[openvino]')"
    assert doctor["backends"]["onnxruntime"].startswith("available")
    bench = json.loads(run_cli("bench", tiny_onnx, "--json", "--batch-size", "1", "--warmup", "0", "--repeats", "1",
                               "--formats", "none", env=env, check=True).stdout)
    assert {"backend": "openvino", "path": str(tiny_onnx),
            "reason": "not installed (pip install 'dcgan-rt[openvino]')"} in bench["skipped"]
    assert [r["backend"] for r in bench["results"]] == ["onnxruntime"]


def test_the_flop_count_follows_the_generator_pytorch_builds():
    """bench counts FLOPs from the ModelConfig, without torch; this pins that plan to the real network."""
    import torch

    from dcgan_rt.train.networks import build_generator

    for cfg in (ModelConfig(img_resolution=64, img_channels=3), ModelConfig(z_dim=16, img_resolution=16, g_width=8)):
        convs = [m for m in build_generator(cfg).modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
            (layer.c_in, layer.c_out, layer.kernel) for layer in generator_layers(cfg)]
