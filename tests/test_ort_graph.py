"""ONNX Runtime's CPU sessions run the phase interleaves as Concats: same pixels, file untouched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from conftest import make_model_dir
from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend
from dcgan_rt.backends.ort_graph import cpu_session_model
from dcgan_rt.digest import sha256_file
from dcgan_rt.latents import latent_range

ort = pytest.importorskip("onnxruntime", reason="the onnxruntime backend needs the [cpu] extra")


def _ops(model_bytes: bytes) -> set[str]:
    return {n.op_type for n in onnx.load_from_string(model_bytes).graph.node}


def _latents(path, seed: int, n: int) -> np.ndarray:
    z_dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return latent_range(seed, 0, n, z_dim)


def _by_path(path, z):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"z": z})[0]


@pytest.fixture(scope="module")
def rgb_onnx(tmp_path_factory):
    """A 32x32 RGB generator of width 16 as `dcgan-rt export` writes it: inner layers' phases
    interleaved by Concat + DepthToSpace (the form OpenVINO runs fastest)."""
    from dcgan_rt.export.exporter import export_model

    folder = tmp_path_factory.mktemp("rgb")
    export_model(make_model_dir(folder / "m", img_resolution=32, img_channels=3, g_width=16), engine=False)
    return folder / "m" / "export" / "generator.onnx"


def test_cpu_session_runs_concat_interleaves_with_the_very_same_pixels(rgb_onnx):
    before = sha256_file(rgb_onnx)
    assert "DepthToSpace" in _ops(rgb_onnx.read_bytes())
    rewritten = cpu_session_model(rgb_onnx)
    assert rewritten is not None and "DepthToSpace" not in _ops(rewritten)
    onnx.checker.check_model(onnx.load_from_string(rewritten), full_check=True)

    z = _latents(rgb_onnx, 3, 7)
    want = _by_path(rgb_onnx, z)
    session = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"z": z})[0], want)  # copies only: bit for bit
    with OnnxRuntimeBackend(rgb_onnx, providers="cpu") as backend:
        assert np.array_equal(backend(z), want)
        assert np.array_equal(backend(z[:1]), want[:1])  # any batch size: the shapes come from the batch
    assert sha256_file(rgb_onnx) == before  # the file on disk keeps OpenVINO's form


def test_the_backend_builds_its_cpu_session_from_the_rewrite_unless_told_not_to(rgb_onnx, monkeypatch):
    from dcgan_rt.backends import onnxruntime as ort_backend

    seen = []

    def spy(path):
        seen.append(cpu_session_model(path))
        return seen[-1]

    monkeypatch.setattr(ort_backend, "cpu_session_model", spy)
    with OnnxRuntimeBackend(rgb_onnx, providers="cpu"):
        pass
    assert len(seen) == 1 and seen[0] is not None
    with OnnxRuntimeBackend(rgb_onnx, providers="cpu", concat_interleave=False):
        pass
    assert len(seen) == 1  # the file's graph, as written


def test_a_rewrite_onnxruntime_refuses_falls_back_to_the_file(rgb_onnx, monkeypatch):
    from dcgan_rt.backends import onnxruntime as ort_backend

    monkeypatch.setattr(ort_backend, "cpu_session_model", lambda _path: b"not a model")
    z = _latents(rgb_onnx, 9, 2)
    with OnnxRuntimeBackend(rgb_onnx, providers="cpu") as backend:
        assert np.array_equal(backend(z), _by_path(rgb_onnx, z))


def test_older_slice_interleaved_files_are_rewritten_too():
    from pathlib import Path

    tiny = Path(__file__).parent / "data" / "tiny_generator.onnx"  # graph v1: Slices, Concat, DepthToSpace
    rewritten = cpu_session_model(tiny)
    assert rewritten is not None and "DepthToSpace" not in _ops(rewritten)
    z = _latents(tiny, 0, 4)
    session = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"z": z})[0], _by_path(tiny, z))


def test_weights_in_an_external_file_are_loaded_by_path_unrewritten(rgb_onnx, tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(rgb_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin")
    external = tmp_path / "generator.onnx"
    onnx.save(model, str(external))
    assert cpu_session_model(external) is None  # from bytes, ONNX Runtime could not find weights.bin
    z = _latents(rgb_onnx, 5, 3)
    with OnnxRuntimeBackend(external, providers="cpu") as backend:
        assert np.array_equal(backend(z), _by_path(rgb_onnx, z))


def test_int8_activations_run_as_uint8_on_onnxruntime_within_a_level_of_the_file(tmp_path):
    """export --int8 writes symmetric int8 activations (TensorRT, OpenVINO); ONNX Runtime's
    CPU sessions get them as uint8 with the zero point moved by 128, which it fuses."""
    from onnx import numpy_helper

    from dcgan_rt.export.exporter import export_model
    from dcgan_rt.images import to_uint8

    model_dir = make_model_dir(tmp_path / "m", img_resolution=32, img_channels=3, g_width=16)
    export_model(model_dir, options=("int8",), engine=False)
    int8 = model_dir / "export" / "generator.int8.onnx"
    before = sha256_file(int8)
    rewritten = onnx.load_from_string(cpu_session_model(int8))
    inits = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    activation_q = [n for n in rewritten.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert activation_q and all(inits[n.input[2]].dtype == np.uint8 for n in activation_q)
    onnx.checker.check_model(rewritten, full_check=True)

    z = _latents(int8, 4, 64)
    want = to_uint8(_by_path(int8, z)).astype(int)
    with OnnxRuntimeBackend(int8, providers="cpu") as backend:
        got = backend.images(z).astype(int)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # integer accumulation: rare one-level roundings
    assert sha256_file(int8) == before
