"""`dcgan-rt export --int8`: a QDQ int8 model, calibrated on latents, recorded in its card, within
its bounds on ONNX Runtime and OpenVINO; and the variants table that drives export, parity and the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from conftest import assert_clean_error, run_cli
from dcgan_rt.export.parity import check_parity, reference_images
from dcgan_rt.latents import latent_range
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import read_onnx_card
from dcgan_rt.train.release import load_generator
from dcgan_rt.variant_table import VARIANTS, engine_variant, select_variants
from export_helpers import copy_run, invoke


@pytest.fixture(scope="module")
def exported_int8(tiny_model_dir, tmp_path_factory):
    """`dcgan-rt export RUN --int8 --uint8 --no-engine` once, through the real console script."""
    run = copy_run(tiny_model_dir, tmp_path_factory.mktemp("int8") / "00000-tiny")
    proc = run_cli("export", run, "--int8", "--uint8", "--no-engine", check=True)
    return run, proc


def test_the_table_decides_which_files_an_export_writes():
    assert [v.filename for v in select_variants(set())] == ["generator.onnx"]
    assert [v.name for v in select_variants({"int8", "uint8"})] == ["fp32", "uint8", "int8", "int8-uint8"]
    assert [v.filename for v in select_variants({"fp16", "uint8"})] == [
        "generator.onnx", "generator.fp16.onnx", "generator.uint8.onnx", "generator.fp16.uint8.onnx"]
    assert engine_variant({"int8"}).filename == "generator.int8.onnx"
    assert engine_variant({"fp16", "uint8"}).name == "fp16-uint8"
    assert engine_variant({"fp16", "int8"}) is None  # no single file computes in both
    assert VARIANTS["int8"].bound.unit == "levels" and VARIANTS["int8"].bound.p99 is not None


def test_int8_export_writes_qdq_files_that_pass_their_bounds(exported_int8):
    run, proc = exported_int8
    names = sorted(p.name for p in (run / "export").iterdir())
    assert names == ["generator.int8.onnx", "generator.int8.uint8.onnx", "generator.onnx", "generator.uint8.onnx"]
    for variant in ("int8", "int8-uint8"):
        assert re.search(rf"^\s*{variant}\s+onnxruntime-cpu\s.*\bpass\b", proc.stdout, re.M), proc.stdout
    for name in ("generator.int8.onnx", "generator.int8.uint8.onnx"):
        model = onnx.load(str(run / "export" / name))
        onnx.checker.check_model(model, full_check=True)
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        for node in (n for n in model.graph.node if n.op_type == "ConvTranspose"):  # only the pixels' interleave:
            pick = inits[node.input[1]]  # a float 0/1 weight, no layer of the generator
            assert pick.dtype == np.float32 and set(np.unique(pick)) == {0.0, 1.0}
        weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
        assert weights  # convolution weights are stored as int8
        zero_points = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer
                       if t.name.endswith("zero_point")]
        assert zero_points and all((zp == 0).all() for zp in zero_points)  # symmetric: TensorRT can build it


def test_every_convolution_is_int8_the_pixels_stay_float_and_the_card_names_them(exported_int8):
    run, _ = exported_int8
    model = onnx.load(str(run / "export" / "generator.int8.onnx"))
    card, _ = read_onnx_card(run / "export" / "generator.int8.onnx")
    producers = {o: n for n in model.graph.node for o in n.output}
    int8_weights = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}

    def weight_is_int8(node) -> bool:
        dq = producers.get(node.input[1])
        return dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in int8_weights

    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert layers and all(weight_is_int8(n) for n in layers)  # the last layer's too
    pixels = []  # every node from the last convolution's output to the image
    node = next(n for n in model.graph.node if "images" in n.output)
    while node is not layers[-1]:
        pixels.append(node)
        node = producers[node.input[0]]
    assert {n.op_type for n in pixels} >= {"Tanh", "ConvTranspose"}  # the activation, the interleave
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in pixels}  # never rounded to int8 steps
    assert set(card.calibration["float_nodes"]) >= {n.name for n in pixels}
    assert not set(card.calibration["float_nodes"]) & {n.name for n in layers}


def test_the_card_records_precision_and_calibration_and_info_shows_it(exported_int8):
    run, _ = exported_int8
    card, io = read_onnx_card(run / "export" / "generator.int8.onnx")
    assert io["precision"] == "int8" and card.precision == "int8"
    assert card.calibration["count"] > 0 and card.calibration["format"] == "QDQ"
    assert "N(0, I)" in card.calibration["latents"] or "standard normal" in card.calibration["latents"]
    source = ModelCard.load(run / "generator.json")
    assert card.model_config == source.model_config and source.precision == "fp32"
    proc = invoke("info", run / "export" / "generator.int8.onnx", "--json")
    assert proc.returncode == 0, proc.stdout
    info = json.loads(proc.stdout)
    assert info["precision"] == "int8" and info["calibration"]["seed"] == card.calibration["seed"]
    table = invoke("info", run / "export" / "generator.int8.onnx").stdout
    assert "int8" in table and "calibration" in table


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_meets_its_bound_against_pytorch_on_each_cpu_runtime(exported_int8, backend):
    pytest.importorskip(backend)
    from dcgan_rt.backends import select_backend

    run, _ = exported_int8
    g, card = load_generator(run)
    z = latent_range(11, 0, 48, card.model_config.z_dim)
    reference = reference_images(g, z)
    for name in ("generator.int8.onnx", "generator.int8.uint8.onnx"):
        with select_backend(run / "export" / name, backend) as b:
            assert b.precision == "int8"
            result = check_parity(name, b.precision, b.output, backend, b.__call__, z, reference, (5, 43))
        assert result.passed, (backend, name, result)
        assert result.max_abs > 0  # it is int8: not the fp32 model under another name


def test_fp16_with_int8_and_an_engine_is_refused_before_anything_is_written(tiny_model_dir, tmp_path):
    run = copy_run(tiny_model_dir, tmp_path / "run")
    proc = run_cli("export", run, "--fp16", "--int8", "--engine")
    assert_clean_error(proc, 2, "--fp16 and --int8")
    assert not (run / "export").exists()


@pytest.mark.gpu
def test_tensorrt_builds_the_int8_engine_from_the_qdq_model(require_tensorrt, tiny_model_dir, tmp_path):
    from dcgan_rt.backends import select_backend
    from dcgan_rt.export.exporter import export_model

    report = export_model(tiny_model_dir, out=tmp_path / "export", options={"int8"}, engine=True, max_batch=64)
    engine = next(p for p in report.files if p.suffix == ".engine")
    assert report.engine.precision == "int8" and report.engine.onnx_file == "generator.int8.onnx"
    assert all(r.passed for r in report.results)
    g, card = load_generator(tiny_model_dir)
    z = latent_range(4, 0, 100, card.model_config.z_dim)
    with select_backend(engine, "tensorrt") as trt:
        assert trt.precision == "int8"
        result = check_parity("int8 engine", "int8", trt.output, "tensorrt", trt.__call__, z,
                              reference_images(g, z), (64, 36))
    assert result.passed, result
    assert result.max_abs > 0 and trt(z[:3]).dtype == np.float32


def test_bench_shows_int8_beside_fp32_against_both_ceilings(exported_int8):
    run, _ = exported_int8
    proc = invoke("bench", run / "export" / "generator.onnx", "--backend", "onnxruntime", "--batch-size", "4",
                  "--formats", "none", "--repeats", "1", "--warmup", "0", "--json")
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    rows = {r["model"]: r for r in report["results"]}
    assert rows["generator.onnx"]["precision"] == "fp32" and rows["generator.int8.onnx"]["precision"] == "int8"
    int8 = rows["generator.int8.onnx"]
    ceiling = report["ceiling"]["cpu_int8"]["onnxruntime"]  # the share is of the row's own runtime's int8 GEMM
    assert "onnxruntime" in ceiling["source"] and "int8 QDQ MatMul" in ceiling["source"] and ceiling["ops_per_s"] > 0
    assert ceiling["ops_per_s"] == max(ceiling["by_activation"].values())
    assert int8["int8_gemm_share"] == pytest.approx(int8["images_per_s"] / ceiling["images_per_s"])
    assert "int8_gemm_share" not in rows["generator.onnx"]
