"""`dcgan-rt doctor [MODEL]`: the environment, and parity on every backend this machine has."""

from __future__ import annotations

import json
import re

import onnxruntime as ort
import pytest

from conftest import assert_clean_error, run_cli
from dcgan_rt.model_card import ModelCard
from export_helpers import invoke, write_fake_engine


def test_environment_report_names_every_runtime():
    proc = run_cli("doctor", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["onnxruntime"]["version"] == ort.__version__
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert report["torch"]["version"].startswith("2.")
    assert set(report) >= {"dcgan-rt", "torch", "onnx", "onnxruntime", "tensorrt", "gpu"}
    assert report["tensorrt"]["version"]  # a version, or why there is none


def test_doctor_model_checks_every_variant_on_every_backend(tiny_model_dir):
    proc = invoke("doctor", tiny_model_dir)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for variant in ("fp32", "fp16", "uint8", "fp16-uint8"):
        assert re.search(rf"^\s*{variant}\s+onnxruntime-cpu\s.*\bpass\b", out, re.M), out
    for variant in ("fp32", "fp16"):  # the independent implementation
        assert re.search(rf"^\s*{variant}\s+onnx\.reference\s.*\bpass\b", out, re.M), out
    assert "parity vs PyTorch fp32" in out and "FAIL" not in out
    assert "onnxruntime" in out and "providers" in out  # the environment comes first
    assert not (tiny_model_dir / "export").exists()  # doctor exports to a temporary folder only


def test_doctor_on_an_onnx_file_compares_with_the_reference_evaluator(tiny_onnx):
    proc = run_cli("doctor", tiny_onnx, check=True)
    assert "parity vs onnx.reference evaluator on generator.onnx" in proc.stdout
    assert re.search(r"^\s*fp32\s+onnxruntime-cpu\s.*\bpass\b", proc.stdout, re.M), proc.stdout


def test_doctor_refuses_an_engine_without_its_sidecar(tiny_model_dir, tmp_path):
    engine = tmp_path / "generator.engine"
    write_fake_engine(engine, ModelCard.load(tiny_model_dir / "generator.json"))
    (tmp_path / "generator.engine.json").unlink()
    assert_clean_error(invoke("doctor", engine), 1, "rebuild with dcgan-rt export")


def test_json_with_a_model_is_bad_usage(tiny_onnx):
    assert_clean_error(run_cli("doctor", tiny_onnx, "--json"), 2, "--json")


@pytest.mark.gpu
def test_doctor_checks_tensorrt_engines_on_a_gpu(require_tensorrt, tiny_model_dir):
    out = run_cli("doctor", tiny_model_dir, check=True).stdout
    for variant in ("fp32", "fp16-uint8"):
        assert re.search(rf"^\s*{variant}\s+tensorrt\s.*\bpass\b", out, re.M), out
