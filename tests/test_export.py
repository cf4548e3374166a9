"""`dcgan-rt export`: every variant round-trips from a run directory and matches PyTorch (DESIGN §5)."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from conftest import assert_clean_error, make_model_dir, run_cli
from dcgan_rt.errors import UsageError
from dcgan_rt.latents import latent_range
from dcgan_rt.model_card import METADATA_KEY, ModelCard
from dcgan_rt.onnx_card import EXPORT_METADATA_KEY, IO_METADATA_KEY, io_contract, read_onnx_card
from dcgan_rt.pixels import to_uint8_nhwc
from dcgan_rt.train.release import load_generator, save_generator
from dcgan_rt.export.engine import engine_unavailable_reason
from dcgan_rt.export.exporter import export_model
from dcgan_rt.export.variants import VARIANTS
from export_helpers import blocked_torch_env, copy_run, invoke

VARIANT_FILES = {
    "fp32": "generator.onnx", "fp16": "generator.fp16.onnx",
    "uint8": "generator.uint8.onnx", "fp16-uint8": "generator.fp16.uint8.onnx",
}
NO_ENGINE_HERE = engine_unavailable_reason()


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """`dcgan-rt export RUN --fp16 --uint8` once, through the real console script."""
    run = copy_run(tiny_model_dir, tmp_path_factory.mktemp("export") / "00000-tiny")
    proc = run_cli("export", run, "--fp16", "--uint8", "--no-engine", check=True)
    return run, proc


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def torch_images(run, z):
    g, _ = load_generator(run)
    with torch.no_grad():
        return g(torch.from_numpy(z)).numpy()


def test_export_writes_every_variant_into_run_export_and_prints_parity(exported):
    run, proc = exported
    names = sorted(p.name for p in (run / "export").iterdir())
    assert names == sorted(VARIANT_FILES.values())  # no staging folder or temp file left behind
    for variant in VARIANT_FILES:
        assert re.search(rf"^\s*{variant}\s+onnxruntime-cpu\s.*\bpass\b", proc.stdout, re.M), proc.stdout
    assert "FAIL" not in proc.stdout
    assert re.search(r"latent seed \d+", proc.stdout)


def test_each_file_is_self_contained_and_passes_the_full_checker(exported):
    run, _ = exported
    for name in VARIANT_FILES.values():
        model = onnx.load(str(run / "export" / name))
        onnx.checker.check_model(model, full_check=True)
        assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
        assert [o.version for o in model.opset_import if o.domain == ""] == [18]
        assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # folded


def test_metadata_carries_generator_json_and_the_io_contract(exported):
    run, _ = exported
    card_json = json.loads((run / "generator.json").read_text())
    card = ModelCard.from_dict(card_json)
    for name, filename in VARIANT_FILES.items():
        v = VARIANTS[name]
        meta = {p.key: p.value for p in onnx.load(str(run / "export" / filename)).metadata_props}
        assert json.loads(meta[METADATA_KEY]) == card_json
        assert json.loads(meta[IO_METADATA_KEY]) == io_contract(card, v.output, v.precision)
        export = json.loads(meta[EXPORT_METADATA_KEY])
        assert export["variant"] == name and export["source_file"] == "generator.safetensors"
        loaded_card, io = read_onnx_card(run / "export" / filename)
        assert loaded_card == card and io["precision"] == v.precision


@pytest.mark.parametrize("filename", ["generator.onnx", "generator.uint8.onnx"])
def test_dynamic_batch_axis_runs_at_1_7_64_1024(exported, filename):
    run, _ = exported
    s = session(run / "export" / filename)
    z = latent_range(7, 0, 1024, 16)
    outs = {n: s.run(None, {"z": z[:n]})[0] for n in (1, 7, 64, 1024)}
    for n, out in outs.items():
        assert out.shape == ((n, 1, 16, 16) if filename == "generator.onnx" else (n, 16, 16, 1))
    # an image does not depend on the batch it was computed in
    np.testing.assert_allclose(outs[1024][:7].astype(np.float32), outs[7].astype(np.float32), atol=1e-6)


def test_fp32_matches_pytorch_on_onnxruntime_and_the_reference_evaluator(exported):
    run, _ = exported
    z = latent_range(123, 0, 32, 16)
    expected = torch_images(run, z)
    ort_out = session(run / "export" / "generator.onnx").run(None, {"z": z})[0]
    assert ort_out.dtype == np.float32 and np.abs(ort_out - expected).max() <= 1e-4
    assert ort_out.min() >= -1 and ort_out.max() <= 1
    ref_out = ReferenceEvaluator(str(run / "export" / "generator.onnx")).run(None, {"z": z[:4]})[0]
    assert np.abs(ref_out - expected[:4]).max() <= 1e-4


def test_uint8_is_nhwc_pixels_within_one_level_of_the_fp32_reference(exported):
    run, _ = exported
    z = latent_range(5, 0, 32, 16)
    pixels = session(run / "export" / "generator.uint8.onnx").run(None, {"z": z})[0]
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 16, 16, 1)
    expected = to_uint8_nhwc(torch_images(run, z))
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
    ref_pixels = ReferenceEvaluator(str(run / "export" / "generator.uint8.onnx")).run(None, {"z": z[:4]})[0]
    assert np.abs(ref_pixels.astype(int) - expected[:4].astype(int)).max() <= 1


def test_uint8_graph_applies_exactly_the_documented_rounding_rule(exported):
    run, _ = exported
    z = latent_range(9, 0, 64, 16)
    floats = session(run / "export" / "generator.onnx").run(None, {"z": z})[0]
    pixels = session(run / "export" / "generator.uint8.onnx").run(None, {"z": z})[0]
    np.testing.assert_array_equal(pixels, to_uint8_nhwc(floats))
    # the rule itself: (x + 1) * 127.5, rounded, clipped (x = 0 is the one exact tie: 127.5 -> 128)
    x = np.array([-1.0, -1 + 0.4 / 127.5, -1 + 0.6 / 127.5, 0.0, 1.0, 1.5, -3.0], np.float32).reshape(1, 1, 1, 7)
    assert to_uint8_nhwc(x).ravel().tolist() == [0, 0, 1, 128, 255, 255, 0]


def test_fp16_variant_computes_in_fp16_with_float32_io_within_its_bound(exported):
    run, _ = exported
    path = run / "export" / "generator.fp16.onnx"
    model = onnx.load(str(path))
    assert {t.data_type for t in model.graph.initializer if len(t.dims) == 4} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    z = latent_range(11, 0, 8, 16)
    expected = torch_images(run, z)
    for out in (ReferenceEvaluator(str(path)).run(None, {"z": z})[0], session(path).run(None, {"z": z})[0]):
        err = np.abs(out.astype(np.float64) - expected)
        assert err.max() <= 3e-2 and err.mean() <= 3e-3
        assert err.max() > 0  # it really is not the fp32 model


def test_bare_safetensors_exports_beside_it_at_the_requested_opset(tiny_model_dir, tmp_path):
    run = copy_run(tiny_model_dir, tmp_path / "m")
    proc = invoke("export", run / "generator.safetensors", "--opset", "17")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = onnx.load(str(run / "export" / "generator.onnx"))
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    if NO_ENGINE_HERE:  # by default an engine is built where possible, else one line says why not
        assert sorted(p.name for p in (run / "export").iterdir()) == ["generator.onnx"]
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("no TensorRT engine built:")]
        assert len(lines) == 1 and NO_ENGINE_HERE in lines[0], proc.stdout
    else:
        assert (run / "export" / "generator.engine.json").is_file()


def test_no_engine_asked_for_needs_no_explanation(exported):
    _, proc = exported
    assert "no TensorRT engine built" not in proc.stdout


@pytest.mark.skipif(NO_ENGINE_HERE is None, reason="TensorRT and a GPU are present here")
def test_engine_flag_without_tensorrt_is_an_error_and_writes_nothing(tiny_model_dir, tmp_path):
    proc = run_cli("export", tiny_model_dir, "--engine", "--out", tmp_path / "out")
    assert_clean_error(proc, 1, "--engine", NO_ENGINE_HERE)
    assert not (tmp_path / "out").exists()


def test_parity_failure_exits_1_prints_the_table_and_writes_nothing(tmp_path):
    """A generator whose fp16 graph overflows (BatchNorm scale 1e7 folds into weights > 65504)."""
    run = make_model_dir(tmp_path / "overflow")
    g, card = load_generator(run)
    with torch.no_grad():
        g.main[1].weight.mul_(1e7)
    save_generator(g, card, run)
    proc = invoke("export", run, "--fp16", "--no-engine")
    assert_clean_error(proc, 1, "parity check failed", "nothing was written")
    assert re.search(r"^\s*fp16\s+onnxruntime-cpu\s.*FAIL", proc.stdout, re.M), proc.stdout
    assert not (run / "export").exists()


@pytest.mark.parametrize("damage, needle", [
    ("missing", "not found"),
    ("truncated", "safetensors"),
    ("no_card", "generator.json"),
    ("onnx", "export needs the trained weights"),
])
def test_bad_model_is_one_clear_error_and_writes_nothing(tiny_model_dir, tmp_path, damage, needle):
    run = copy_run(tiny_model_dir, tmp_path / "run")
    target = run
    if damage == "missing":
        target = tmp_path / "nowhere"
    elif damage == "truncated":
        w = run / "generator.safetensors"
        w.write_bytes(w.read_bytes()[:200])
    elif damage == "no_card":
        (run / "generator.json").unlink()
    elif damage == "onnx":
        target = run / "model.onnx"
        target.write_bytes(b"\x08\x07random bytes, not a model")
    proc = run_cli("export", target, env=blocked_torch_env(tmp_path / "blocked"))  # refused before torch loads
    assert_clean_error(proc, 1, needle)
    assert len((proc.stdout + proc.stderr).strip().splitlines()) == 1
    assert not (run / "export").exists() and not (tmp_path / "nowhere").exists()


def test_options_that_do_not_apply_are_rejected(tiny_model_dir, tmp_path):
    proc = run_cli("export", tiny_model_dir, "--no-engine", "--max-batch", "8", "--out", tmp_path / "out")
    assert_clean_error(proc, 2, "--max-batch", "--no-engine")
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="--opset"):
        export_model(tiny_model_dir, out=tmp_path / "out", opset=9)
    with pytest.raises(UsageError, match="--max-batch"):
        export_model(tiny_model_dir, out=tmp_path / "out", max_batch=0)
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_export_builds_a_checked_engine_by_default(require_tensorrt, tiny_model_dir, tmp_path):
    proc = run_cli("export", tiny_model_dir, "--fp16", "--uint8", "--max-batch", "64", "--out", tmp_path, check=True)
    assert re.search(r"^\s*fp16-uint8 engine\s+tensorrt\s.*\bpass\b", proc.stdout, re.M), proc.stdout
    sidecar = json.loads((tmp_path / "generator.engine.json").read_text())
    assert sidecar["precision"] == "fp16" and sidecar["onnx_file"] == "generator.fp16.uint8.onnx"
    assert sidecar["batch_profile"] == {"min": 1, "opt": 64, "max": 64}
