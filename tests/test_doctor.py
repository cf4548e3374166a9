"""`dcgan-rt doctor [MODEL]`: the environment, and parity on every backend this machine has."""

from __future__ import annotations

import json
import re

import onnxruntime as ort
import pytest

from conftest import assert_clean_error, run_cli
from dcgan_rt.model_card import ModelCard
from dcgan_rt.variant_table import VARIANTS
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
    for variant in VARIANTS:  # int8 and int8-uint8 too
        assert re.search(rf"^\s*{variant}\s+onnxruntime-cpu\s.*\bpass\b", out, re.M), out
        assert re.search(rf"^\s*{variant}\s+openvino\s.*\bpass\b", out, re.M), out  # f32, not bf16
    for variant in ("fp32", "fp16"):  # the independent implementation
        assert re.search(rf"^\s*{variant}\s+onnx\.reference\s.*\bpass\b", out, re.M), out
    assert re.search(r"^\s*fp32\s+torch\s.*\bpass\b", out, re.M), out  # the backend generate --backend torch runs
    assert "parity vs PyTorch fp32" in out and "FAIL" not in out
    assert "onnxruntime" in out and "providers" in out  # the environment comes first
    assert not (tiny_model_dir / "export").exists()  # doctor exports to a temporary folder only


def test_doctor_on_an_onnx_file_compares_with_onnxruntime_cpu(tiny_onnx):
    proc = run_cli("doctor", tiny_onnx, check=True)
    assert "parity vs ONNX Runtime CPU on generator.onnx" in proc.stdout
    for backend in ("openvino", r"onnx\.reference"):
        assert re.search(rf"^\s*fp32\s+{backend}\s.*\bpass\b", proc.stdout, re.M), proc.stdout


def broken_package(tmp_path, name: str) -> dict:
    """Environment in which `name` is installed but its native library does not load."""
    site = tmp_path / "broken-site"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(
        f"raise OSError('lib{name}.so: cannot open shared object file: No such file or directory')\n")
    return {"PYTHONPATH": str(site)}


def test_a_backend_that_cannot_start_fails_its_row_and_every_other_row_still_runs(tiny_model_dir, tmp_path):
    proc = run_cli("doctor", tiny_model_dir, env=broken_package(tmp_path, "openvino"))
    out = proc.stdout + proc.stderr
    assert_clean_error(proc, 1, "checks failed")
    fails = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert len(fails) == len(VARIANTS) and all("on openvino: OSError: libopenvino.so" in line for line in fails), out
    for variant in VARIANTS:
        assert re.search(rf"^\s*{variant}\s+onnxruntime-cpu\s.*\bpass\b", out, re.M), out
    assert re.search(r"^\s*fp16\s+onnx\.reference\s.*\bpass\b", out, re.M), out  # rows after it ran too


def test_an_installed_runtime_that_does_not_load_fails_doctor(tmp_path):
    proc = run_cli("doctor", env=broken_package(tmp_path, "tensorrt"))
    assert_clean_error(proc, 1, "do not load")
    assert "FAIL tensorrt: installed but does not load (OSError: libtensorrt.so" in proc.stdout


def test_an_absent_runtime_is_not_checked_and_not_a_failure(tiny_onnx, tmp_path):
    from export_helpers import blocker

    proc = run_cli("doctor", tiny_onnx, env=blocker(tmp_path, "openvino"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not checked: openvino: not installed" in proc.stdout


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


@pytest.mark.gpu
def test_doctor_checks_the_torch_cuda_backend_generate_runs(require_cuda, tiny_model_dir):
    out = run_cli("doctor", tiny_model_dir, check=True).stdout
    for precision in ("fp32", "fp16"):
        assert re.search(rf"^\s*{precision}\s+torch-cuda\s.*\bpass\b", out, re.M), out


def test_onnxruntime_and_onnxruntime_gpu_both_installed_is_a_failure(tmp_path):
    # What `pip install '.[dev,gpu]'` used to leave: a second distribution over the same files.
    site = tmp_path / "site"
    info = site / "onnxruntime_gpu-1.30.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.30.0\n")
    proc = run_cli("doctor", env={"PYTHONPATH": str(site)})
    assert_clean_error(proc, 1, "do not load or conflict")
    assert "FAIL onnxruntime: onnxruntime and onnxruntime-gpu are both installed" in proc.stdout
