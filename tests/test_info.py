"""`dcgan-rt info FILE`: the model card of every artifact kind, as a table or JSON, without torch."""

from __future__ import annotations

import hashlib
import json
import shutil

import onnx
import pytest

from conftest import assert_clean_error, run_cli
from dcgan_rt.model_card import METADATA_KEY, ModelCard
from dcgan_rt.onnx_card import UINT8_NHWC, io_contract
from export_helpers import blocked_torch_env, foreign_onnx_model, write_fake_engine


@pytest.fixture(scope="module")
def artifacts(tiny_model_dir, tiny_onnx, tmp_path_factory):
    """A run dir, the fp32 ONNX, its uint8 variant, and a plan file with its sidecar."""
    from dcgan_rt.export.onnx_export import set_metadata
    from dcgan_rt.export.variants import append_uint8_tail

    d = tmp_path_factory.mktemp("info")
    card = ModelCard.load(tiny_model_dir / "generator.json")
    uint8 = onnx.load(str(tiny_onnx))
    append_uint8_tail(uint8)
    set_metadata(uint8, card, UINT8_NHWC, "fp32")
    onnx.save(uint8, str(d / "generator.uint8.onnx"))
    write_fake_engine(d / "generator.engine", card)
    return {"run": tiny_model_dir, "onnx": tiny_onnx, "uint8": d / "generator.uint8.onnx",
            "engine": d / "generator.engine", "card": card}


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory):
    """info must not need torch."""
    return blocked_torch_env(tmp_path_factory.mktemp("blocked"))


@pytest.mark.parametrize("kind", ["run", "onnx", "uint8", "engine"])
def test_json_describes_each_artifact_without_torch(artifacts, no_torch, kind):
    proc = run_cli("info", artifacts[kind], "--json", env=no_torch, check=True)
    info = json.loads(proc.stdout)
    path = artifacts[kind] / "generator.safetensors" if kind == "run" else artifacts[kind]
    assert info["file"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["file"]["bytes"] == path.stat().st_size
    assert info["card"] == artifacts["card"].to_dict()
    assert info["model_config"]["z_dim"] == 16
    assert info["provenance"]["dataset"] == "synthetic" and info["provenance"]["training_step"] == 3
    expected_io = {
        "run": io_contract(artifacts["card"]), "onnx": io_contract(artifacts["card"]),
        "uint8": io_contract(artifacts["card"], UINT8_NHWC), "engine": io_contract(artifacts["card"], UINT8_NHWC, "fp16"),
    }[kind]
    assert info["io"] == expected_io
    assert info["precision"] == ("fp16" if kind == "engine" else "fp32")
    if kind == "engine":
        assert info["engine"]["tensorrt_version"] == "10.9.0.34"
        assert info["engine"]["batch_profile"] == {"min": 1, "opt": 256, "max": 256}
    if kind == "onnx":
        assert info["onnx"]["opset"] == 18 and info["parameters"] > 0


def test_table_shows_config_io_precision_hashes_and_provenance(artifacts):
    proc = run_cli("info", artifacts["uint8"], check=True)
    out = proc.stdout
    sha = hashlib.sha256(artifacts["uint8"].read_bytes()).hexdigest()
    for needle in ("z_dim", "img_resolution", "images: uint8 [N, 16, 16, 1]", "z: float32 [N, 16]",
                   "round_half_to_even", "synthetic", sha[:40]):
        assert needle in out, f"{needle!r} not in:\n{out}"


def test_safetensors_table_counts_parameters(artifacts):
    out = run_cli("info", artifacts["run"] / "generator.safetensors", check=True).stdout
    # tiny config: 16*16*16 + 16*8*16 + 8*1*16 conv weights + 2*(16+8) BatchNorm affine
    assert "6,320" in out and "fp32" in out


def _damaged(kind, tmp_path, artifacts):
    if kind == "random.onnx":
        path = tmp_path / "random.onnx"
        path.write_bytes(bytes(range(256)) * 8)
        return path, "not a readable ONNX"
    if kind == "foreign.onnx":
        path = tmp_path / "foreign.onnx"
        onnx.save(foreign_onnx_model(), str(path))
        return path, "not a dcgan-rt generator"
    if kind == "foreign-graph-with-card.onnx":
        model = foreign_onnx_model()
        model.metadata_props.add(key=METADATA_KEY, value=artifacts["card"].to_json())
        model.metadata_props.add(key="dcgan_rt.io", value=json.dumps(io_contract(artifacts["card"])))
        path = tmp_path / "impostor.onnx"
        onnx.save(model, str(path))
        return path, "graph inputs are ['x']"
    if kind == "truncated.safetensors":
        shutil.copy(artifacts["run"] / "generator.json", tmp_path / "generator.json")
        data = (artifacts["run"] / "generator.safetensors").read_bytes()
        (tmp_path / "generator.safetensors").write_bytes(data[: len(data) // 2])
        return tmp_path / "generator.safetensors", "truncated"
    if kind == "missing.onnx":
        return tmp_path / "missing.onnx", "not found"
    engine = tmp_path / "generator.engine"
    write_fake_engine(engine, artifacts["card"])
    if kind == "engine-without-sidecar":
        (tmp_path / "generator.engine.json").unlink()
        return engine, "rebuild with dcgan-rt export"
    if kind == "engine-with-replaced-plan":
        engine.write_bytes(b"another plan")
        return engine, "does not match its sidecar"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "random.onnx", "foreign.onnx", "foreign-graph-with-card.onnx", "truncated.safetensors", "missing.onnx",
    "engine-without-sidecar", "engine-with-replaced-plan",
])
def test_bad_file_is_one_clear_error(artifacts, tmp_path, kind):
    path, needle = _damaged(kind, tmp_path, artifacts)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli("info", path)
    assert_clean_error(proc, 1, needle)
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
