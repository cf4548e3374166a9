"""Backends: the choice `auto` makes and says, parity between them, and clear refusals."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from export_helpers import blocker
from dcgan_rt.backends import select_backend
from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend
from dcgan_rt.digest import sha256_bytes
from dcgan_rt.errors import ArtifactError, MissingDependencyError, NumericalError, UsageError
from dcgan_rt.images import to_uint8
from dcgan_rt.latents import latents
from dcgan_rt.onnx_card import UINT8_NHWC


def run_cli_python(code: str, env: dict):
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc


def test_auto_runs_fp32_onnx_on_onnxruntime_and_says_why(tiny_onnx):
    """fp32 on ONNX Runtime where it is installed (as fast model-only as OpenVINO, faster end
    to end: docs/performance.md); the file and its precision are the ones given."""
    with select_backend(tiny_onnx) as b:
        assert b.name == "onnxruntime" and b.device == "cpu" and b.artifact.path == tiny_onnx
        assert "MODEL is ONNX" in b.reason and "ONNX Runtime is the fastest CPU runtime" in b.reason
        assert b.z_dim == 16 and b.precision == "fp32"


def test_auto_without_onnxruntime_runs_fp32_on_openvino_and_names_the_faster_extra(tiny_onnx, tmp_path):
    pytest.importorskip("openvino", reason="this check runs auto with OpenVINO alone")
    probe = ("from dcgan_rt.backends import select_backend; b = select_backend(%r); "
             "print(b.name, '|', b.describe(), '|', b.reason)" % str(tiny_onnx))
    proc = run_cli_python(probe, env=blocker(tmp_path, "onnxruntime"))
    name, described, reason = (part.strip() for part in proc.stdout.split("|"))
    assert name == "openvino" and "streams" in described
    assert "pip install 'dcgan-rt[cpu]'" in reason  # says what would be faster


def test_openvino_alone_reports_its_own_error_not_a_missing_onnxruntime(tiny_onnx, tmp_path):
    """With nothing to fall back on, a file OpenVINO cannot read is reported as such."""
    pytest.importorskip("openvino", reason="this check runs auto with OpenVINO alone")
    broken = tmp_path / "generator.onnx"
    broken.write_bytes(tiny_onnx.read_bytes()[: tiny_onnx.stat().st_size // 2])
    proc = run_cli("generate", broken, "-n", "1", "--out", tmp_path / "out", env=blocker(tmp_path, "onnxruntime"))
    assert_clean_error(proc, 1, str(broken))
    assert "dcgan-rt[cpu]" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_auto_runs_each_precision_on_its_fastest_cpu_runtime_and_never_swaps_the_file(tiny_model_dir, tmp_path):
    """fp16 stays on ONNX Runtime; int8 goes to OpenVINO where it is installed."""
    from dcgan_rt.export.exporter import export_model

    export_model(tiny_model_dir, out=tmp_path / "export", options=("fp16", "int8"), engine=False)
    fp16 = tmp_path / "export" / "generator.fp16.onnx"
    with select_backend(fp16) as b:
        assert b.name == "onnxruntime" and b.precision == "fp16" and b.artifact.path == fp16
        assert "runs fp16 files on the CPU" in b.reason
    int8 = tmp_path / "export" / "generator.int8.onnx"
    expected = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"
    with select_backend(int8) as b:
        assert b.name == expected and b.precision == "int8" and b.artifact.path == int8
        assert "int8 files" in b.reason


def test_auto_on_a_run_dir_uses_its_export_only_when_made_from_these_weights(tiny_model_dir, tiny_onnx, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    with select_backend(run) as b:
        assert b.name == "torch" and "no export/ folder" in b.reason

    (run / "export").mkdir()
    shutil.copy(tiny_onnx, run / "export" / "generator.onnx")  # no provenance: not provably these weights
    with select_backend(run) as b:
        assert b.name == "torch" and "other weights" in b.reason

    import onnx

    model = onnx.load(tiny_onnx)
    model.metadata_props.add(key="dcgan_rt.export", value=json.dumps(
        {"source_sha256": sha256_bytes((run / "generator.safetensors").read_bytes())}))
    onnx.save(model, run / "export" / "generator.onnx")
    with select_backend(run) as b:
        assert b.name in ("onnxruntime", "openvino") and b.artifact.path == run / "export" / "generator.onnx"
        assert "exported from these weights" in b.reason


def test_torch_and_onnxruntime_agree_within_design_bounds(tiny_model_dir, tiny_onnx):
    from dcgan_rt.backends.torch import TorchBackend

    z = latents(5, range(40), 16)
    with TorchBackend(tiny_model_dir, uint8=False) as t, select_backend(tiny_onnx, "onnxruntime") as o:
        ref, got = t(z), o(z)
        assert got.shape == ref.shape == (40, 1, 16, 16)
        assert np.abs(got - ref).max() <= 1e-4  # DESIGN §5
        t.output = UINT8_NHWC
        assert np.abs(t.images(z).astype(int) - o.images(z).astype(int)).max() <= 1


@pytest.mark.parametrize("name, model, needle", [
    ("tensorrt", "onnx", "needs a TensorRT .engine"),
    ("torch", "onnx", "needs a run directory or generator.safetensors"),
    ("onnxruntime", "dir", "needs an .onnx file"),
    ("bogus", "onnx", "unknown backend 'bogus'"),
])
def test_backend_that_cannot_read_model_is_refused(tiny_onnx, tiny_model_dir, name, model, needle):
    with pytest.raises(UsageError, match=needle):
        select_backend(tiny_onnx if model == "onnx" else tiny_model_dir, name)


def test_engine_is_checked_then_names_what_to_install(tiny_onnx, tmp_path):
    from dcgan_rt.engine_sidecar import EngineSidecar, write_sidecar
    from dcgan_rt.onnx_card import io_contract, read_onnx_card

    engine = tmp_path / "generator.engine"
    engine.write_bytes(b"not really a plan")
    with pytest.raises(ArtifactError, match="rebuild with dcgan-rt export"):
        select_backend(engine)  # no sidecar
    card, _ = read_onnx_card(tiny_onnx)
    write_sidecar(engine, EngineSidecar(
        model_card=card, io=io_contract(card), precision="fp32", tensorrt_version="10.9.0", gpu_name="H100",
        compute_capability="9.0", batch_min=1, batch_opt=256, batch_max=1024, onnx_file="generator.onnx",
        onnx_sha256="0" * 64, plan_sha256=sha256_bytes(engine.read_bytes()), plan_bytes=17, workspace_bytes=0))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"pip install 'dcgan-rt\[gpu\]'"):
            select_backend(engine)


def test_cuda_provider_asked_for_without_onnxruntime_gpu_names_the_package(tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(MissingDependencyError, match="onnxruntime-gpu"):
        OnnxRuntimeBackend(tiny_onnx, providers="cuda")


def test_generate_from_onnx_works_with_torch_blocked(tiny_onnx, tiny_model_dir, tmp_path):
    env = blocker(tmp_path, "torch")
    probe = run_cli("generate", tiny_model_dir, "-n", 3, "--out", tmp_path / "t", "--backend", "torch", env=env)
    assert_clean_error(probe, 1, "needs torch", "pip install 'dcgan-rt[train]'")  # the blocker works, cleanly

    out = tmp_path / "out"
    proc = run_cli("generate", tiny_onnx, "-n", 20, "--out", out, "--format", "tar", env=env, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and (out / "shard-000000.tar").exists()
    assert manifest["backend"] in ("onnxruntime", "openvino") and manifest["backend"] in proc.stdout


def test_missing_onnxruntime_is_one_line_naming_the_extra(tiny_onnx, tmp_path):
    # OpenVINO blocked too: with it, auto would run the file on OpenVINO instead
    proc = run_cli("generate", tiny_onnx, "-n", 3, "--out", tmp_path / "out",
                   env=blocker(tmp_path, "onnxruntime", "openvino"))
    assert_clean_error(proc, 1, "needs onnxruntime", "pip install 'dcgan-rt[cpu]'")
    assert not (tmp_path / "out").exists()


def test_uint8_rule_rounds_half_to_even_in_float32_and_refuses_nan():
    # A float32 x whose (x + 1) * 127.5, in float32, is exactly 126.5: half to even gives 126.
    x0 = np.float32(126.5 / 127.5 - 1)
    xs = x0 + np.arange(-200, 200, dtype=np.float32) * np.spacing(x0)
    x = xs[(xs + np.float32(1)) * np.float32(127.5) == np.float32(126.5)][0]
    images = np.array([x, -1, 1, 0, -1.5, 2.0], dtype=np.float32).reshape(1, 1, 1, 6)
    assert to_uint8(images).reshape(-1).tolist() == [126, 0, 255, 128, 0, 255]
    with pytest.raises(NumericalError, match="NaN"):
        to_uint8(np.full((1, 1, 2, 2), np.nan, dtype=np.float32))


@pytest.mark.gpu
def test_onnxruntime_cuda_matches_cpu(tiny_onnx, require_cuda):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (pip install 'dcgan-rt[gpu]')")
    z = latents(0, range(64), 16)
    with OnnxRuntimeBackend(tiny_onnx, providers="cuda") as gpu, OnnxRuntimeBackend(tiny_onnx, providers="cpu") as cpu:
        assert gpu.device.startswith("cuda")
        assert np.abs(gpu(z) - cpu(z)).max() <= 1e-4


@pytest.mark.gpu
def test_tensorrt_backend_keeps_order_with_two_batches_in_flight(tiny_model_dir, tmp_path, require_tensorrt):
    from dcgan_rt.export.exporter import export_model

    report = export_model(tiny_model_dir, out=tmp_path / "export", engine=True, max_batch=64)
    engine = next(p for p in report.files if p.suffix == ".engine")
    with select_backend(engine) as trt, select_backend(tmp_path / "export" / "generator.onnx", "onnxruntime") as ort:
        batches = [latents(0, range(k, k + n), 16) for k, n in ((0, 64), (64, 7), (71, 1), (72, 33))]
        got = list(trt.map_images(batches))
        assert [g.shape[0] for g in got] == [64, 7, 1, 33]
        for z, images in zip(batches, got):
            assert np.abs(images.astype(int) - ort.images(z).astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_cpu_backends_map_images_keeps_order_with_batches_queued(tiny_onnx, name):
    """generate's loop: more batches than the backend keeps in flight, of uneven sizes, come
    back in order and equal to one batch at a time."""
    if name == "openvino":
        pytest.importorskip("openvino", reason="the openvino backend needs the [openvino] extra")
    z = latents(3, range(70), 16)
    cuts = [0, 9, 10, 26, 27, 45, 60, 70]
    batches = [z[a:b] for a, b in zip(cuts, cuts[1:])]
    with select_backend(tiny_onnx, name) as b:
        one_by_one = [b.images(batch) for batch in batches]
        streamed = list(b.map_images(batches))
    assert [len(x) for x in streamed] == [len(x) for x in batches]
    for got, want in zip(streamed, one_by_one):
        assert np.array_equal(got, want)
