"""TensorRT engines: the sidecar is checked before a plan is trusted; building and running on a GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dcgan_rt.engine_sidecar import (
    EngineSidecar, check_compatibility, load_engine, read_plan, read_sidecar, sidecar_path,
)
from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import FLOAT_NCHW
from export_helpers import write_fake_engine


@pytest.fixture
def card(tiny_model_dir):
    return ModelCard.load(tiny_model_dir / "generator.json")


def test_sidecar_round_trips_and_describes_the_plan(card, tmp_path):
    written = write_fake_engine(tmp_path / "generator.engine", card)
    assert sidecar_path(tmp_path / "generator.engine").name == "generator.engine.json"
    data = json.loads((tmp_path / "generator.engine.json").read_text())
    assert data["format"] == "dcgan-rt/tensorrt-engine"
    assert data["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert data["batch_profile"] == {"min": 1, "opt": 256, "max": 256}
    assert set(data) >= {"tensorrt_version", "precision", "onnx_sha256", "plan_sha256", "model_card", "io"}
    read = read_sidecar(tmp_path / "generator.engine")
    assert read == written
    assert read_plan(tmp_path / "generator.engine", read) == (tmp_path / "generator.engine").read_bytes()


def test_loading_checks_the_sidecar_before_tensorrt_is_needed(card, tmp_path):
    engine = tmp_path / "generator.engine"
    write_fake_engine(engine, card)
    engine.write_bytes(engine.read_bytes()[:-1])  # a damaged or replaced plan
    with pytest.raises(ArtifactError, match="does not match its sidecar.*rebuild with dcgan-rt export"):
        load_engine(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(ArtifactError, match="no sidecar.*rebuild with dcgan-rt export"):
        load_engine(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON.*rebuild"):
        load_engine(engine)


@pytest.mark.parametrize("field, value, needle", [
    ("format", "something/else", "not a dcgan-rt engine sidecar"),
    ("io", {"input": {}, "output": {"dtype": "float32"}}, "does not match its model card"),
    ("plan_sha256", None, "missing or mangles"),
])
def test_a_mangled_sidecar_is_refused(card, tmp_path, field, value, needle):
    engine = tmp_path / "generator.engine"
    write_fake_engine(engine, card)
    data = json.loads(sidecar_path(engine).read_text())
    if value is None:
        del data[field]
    else:
        data[field] = value
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=needle):
        read_sidecar(engine)


def test_another_tensorrt_gpu_architecture_or_gpu_model_means_rebuild(card, tmp_path):
    sidecar = write_fake_engine(tmp_path / "generator.engine", card, tensorrt_version="10.9.0.34",
                                compute_capability="9.0")
    h100 = "NVIDIA H100 80GB HBM3"
    check_compatibility(sidecar, "10.9.0.34", "9.0", h100)  # same: fine
    with pytest.raises(ArtifactError, match=r"TensorRT 10\.9\.0\.34, this machine has TensorRT 11\.0\.0.*rebuild"):
        check_compatibility(sidecar, "11.0.0", "9.0", h100)
    with pytest.raises(ArtifactError, match=r"compute capability 9\.0.*this GPU has 8\.6.*rebuild"):
        check_compatibility(sidecar, "10.9.0.34", "8.6", h100)
    # Same compute capability, another GPU model: plans are tuned per model.
    with pytest.raises(ArtifactError, match=r"built on a NVIDIA H100 80GB HBM3, this GPU is a NVIDIA H100 PCIe.*rebuild"):
        check_compatibility(sidecar, "10.9.0.34", "9.0", "NVIDIA H100 PCIe")


@pytest.mark.gpu
def test_built_engine_loads_and_matches_pytorch_at_any_batch_size(require_tensorrt, tiny_model_dir, tmp_path):
    from dcgan_rt.export.engine import build_engine, engine_runner
    from dcgan_rt.export.parity import reference_images
    from dcgan_rt.export.variants import FP32, export_variants
    from dcgan_rt.latents import latent_range
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(tiny_model_dir)
    paths = export_variants(g, card, [FP32], tmp_path)
    sidecar = build_engine(paths["fp32"], tmp_path / "generator.engine", card, "fp32", FLOAT_NCHW, max_batch=64)
    assert isinstance(sidecar, EngineSidecar) and read_sidecar(tmp_path / "generator.engine") == sidecar
    run = engine_runner(tmp_path / "generator.engine")
    z = latent_range(3, 0, 100, card.model_config.z_dim)  # > max batch: the runner splits it
    expected = reference_images(g, z)
    for n in (1, 7, 64, 100):
        out = run(z[:n])
        assert out.shape == (n, 1, 16, 16)
        assert np.abs(out - expected[:n]).max() <= 1e-4
