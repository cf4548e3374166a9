"""GPU paths that only a GPU machine can run: cuda-python buffers, TensorRT engines through the
backend generate uses (fp16, uint8, --gpu N), the TensorRT-EP engine cache with two models,
and CUDA training (AMP, channels_last, R1) through the CLI. Each skips with its reason here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_model_dir
from dcgan_rt.export.parity import BOUNDS, errors, reference_images
from dcgan_rt.latents import latent_range
from dcgan_rt.onnx_card import UINT8_NHWC

pytestmark = pytest.mark.gpu


@pytest.fixture
def require_cuda_python():
    from dcgan_rt.gpu import find_gpu

    gpu, reason = find_gpu()
    if gpu is None:
        pytest.skip(reason)
    from dcgan_rt.backends.cuda_memory import cudart
    from dcgan_rt.errors import MissingDependencyError

    try:
        cudart()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def test_cuda_python_buffers_round_trip_on_a_stream(require_cuda_python):
    from dcgan_rt.backends import cuda_memory as m

    m.set_device(0)
    data = np.random.default_rng(0).standard_normal((257, 100)).astype(np.float32)
    host_in, host_out = m.PinnedBuffer(data.nbytes), m.PinnedBuffer(data.nbytes)
    device = m.DeviceBuffer(data.nbytes)
    stream, done = m.Stream(), m.Event()
    host_in.view(np.float32, data.shape)[...] = data
    stream.copy_to_device(device.ptr, host_in.ptr, data.nbytes)
    stream.copy_to_host(host_out.ptr, device.ptr, data.nbytes)
    done.record(stream)
    done.synchronize()
    np.testing.assert_array_equal(host_out.view(np.float32, data.shape), data)
    for thing in (host_in, host_out, device):
        thing.free()
    stream.destroy()
    done.destroy()


@pytest.mark.parametrize("fp16, uint8", [(False, False), (True, False), (False, True), (True, True)])
def test_tensorrt_backend_meets_the_bounds_for_every_engine_variant(require_tensorrt, tiny_model_dir, tmp_path,
                                                                    fp16, uint8):
    from dcgan_rt.backends import select_backend
    from dcgan_rt.export.exporter import export_model
    from dcgan_rt.train.release import load_generator

    report = export_model(tiny_model_dir, out=tmp_path / "export", options={o for o, on in (("fp16", fp16), ("uint8", uint8)) if on}, engine=True, max_batch=64)
    engine = next(p for p in report.files if p.suffix == ".engine")
    g, card = load_generator(tiny_model_dir)
    z = latent_range(4, 0, 100, card.model_config.z_dim)
    reference = reference_images(g, z)
    with select_backend(engine, "tensorrt") as trt:
        precision = "fp16" if fp16 else "fp32"
        assert trt.precision == precision
        out = np.concatenate(list(trt.map_images([z[:64], z[64:65], z[65:]])))  # pixels, two in flight
        max_lv, mean_lv = errors(UINT8_NHWC, out, reference)
        bound = BOUNDS[(precision, UINT8_NHWC)]
        assert max_lv <= bound.max_abs and (bound.mean_abs is None or mean_lv <= bound.mean_abs)
        raw = trt(z[:64])
        assert raw.dtype == (np.uint8 if uint8 else np.float32)


def test_generate_with_an_engine_on_gpu_n(require_tensorrt, tiny_model_dir, tmp_path, cli):
    import torch

    from dcgan_rt.export.exporter import export_model

    export_model(tiny_model_dir, out=tmp_path / "export", options={"uint8"}, engine=True, max_batch=64)
    last = torch.cuda.device_count() - 1
    out = tmp_path / "out"
    proc = cli("generate", tmp_path / "export" / "generator.engine", "-n", "100", "--out", out, "--format", "npy",
               "--gpu", str(last), check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["backend"] == "tensorrt"
    assert "tensorrt" in proc.stdout


def test_tensorrt_ep_cache_keeps_two_models_of_one_config_apart(require_cuda, tmp_path, cli):
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no TensorRT provider (pip install 'dcgan-rt[gpu]')")
    from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend
    from dcgan_rt.export.onnx_export import export_onnx
    from dcgan_rt.train.release import load_generator

    z = latent_range(0, 0, 8, 16)
    images = []
    for seed in (0, 1):  # same config and file name, different weights, one cache root
        g, card = load_generator(make_model_dir(tmp_path / f"run{seed}", seed=seed))
        onnx_path = export_onnx(g, card, tmp_path / f"m{seed}" / "generator.onnx")
        with OnnxRuntimeBackend(onnx_path, providers="tensorrt") as backend:
            assert backend.providers[0] == "TensorrtExecutionProvider"
            out = backend(z)
        np.testing.assert_allclose(out, reference_images(g, z), atol=1e-4)
        images.append(out)
    assert np.abs(images[0] - images[1]).max() > 1e-2


def test_cuda_training_smoke_with_amp_channels_last_and_r1(require_cuda, tmp_path, cli):
    out = tmp_path / "runs"
    cli("train", "--steps", "4", "--device", "cuda", "--amp", "--r1-gamma", "1", "--r1-every", "1",
        "--batch-size", "16", "--out", out, check=True, env={"DCGAN_RT_OFFLINE": "1"})
    run = next(p for p in out.iterdir() if p.is_dir() and p.name != "latest")
    config = json.loads((run / "train_config.json").read_text())
    options = config.get("options", config)
    assert options["amp"] is True and options["channels_last"] is True and options["r1_gamma"] == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] == 4
    assert all(np.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))
    assert (run / "generator.safetensors").is_file()
