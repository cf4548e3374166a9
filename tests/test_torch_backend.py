"""The torch backend: BatchNorm folding, the CPU path as before, and the CUDA fast path
(fp32 and opt-in fp16 against the design's bounds, CUDA graphs, --gpu N, auto's choice)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_clean_error, make_model_dir
from dcgan_rt.backends import select_backend
from dcgan_rt.backends.torch_fold import fold_batchnorm
from dcgan_rt.export.parity import BOUNDS, errors, reference_images
from dcgan_rt.latents import latent_range
from dcgan_rt.onnx_card import FLOAT_NCHW, UINT8_NHWC
from dcgan_rt.pixels import to_uint8_nhwc
from dcgan_rt.train.release import load_generator


@pytest.mark.parametrize("config", [
    {},  # the tiny test generator (16x16, grey, InfoGAN code)
    dict(z_dim=100, img_resolution=64, img_channels=3, g_width=16, code_dim=0),  # the default shape, narrower
])
def test_batchnorm_folding_matches_the_unfolded_generator_on_the_cpu(tmp_path, config):
    g, card = load_generator(make_model_dir(tmp_path / "m", seed=3, **config))
    folded = fold_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    z = torch.from_numpy(latent_range(1, 0, 32, card.model_config.z_dim))
    with torch.no_grad():
        assert (folded(z) - g(z)).abs().max().item() <= 1e-5


def test_torch_on_the_cpu_is_the_plain_generator_in_fp32(tiny_model_dir):
    g, card = load_generator(tiny_model_dir)
    z = latent_range(7, 0, 24, card.model_config.z_dim)
    with select_backend(tiny_model_dir, "torch") as b:
        assert b.device == "cpu" and b.precision == "fp32" and "CPU" in b.describe()
        # Pixel for pixel what the PyTorch reference makes, through the one rounding rule.
        np.testing.assert_array_equal(b.images(z), to_uint8_nhwc(reference_images(g, z)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
@pytest.mark.parametrize("args, needle", [
    (["--precision", "fp16"], "--precision fp16 needs a CUDA GPU"),
    (["--gpu", "1"], "--gpu 1 asked for, but this PyTorch sees no CUDA GPU"),
    (["--precision", "bf16"], "--precision must be fp32 or fp16"),
])
def test_gpu_only_options_on_a_cpu_machine_are_one_clear_line(tiny_model_dir, tmp_path, cli, args, needle):
    proc = cli("generate", tiny_model_dir, "-n", "2", "--out", tmp_path / "out", "--backend", "torch", *args)
    assert_clean_error(proc, 2, needle)
    assert not (tmp_path / "out").exists()


def test_fp16_is_refused_for_backends_that_run_their_file(tiny_onnx, tmp_path, cli):
    proc = cli("generate", tiny_onnx, "-n", "2", "--out", tmp_path / "out", "--precision", "fp16")
    assert_clean_error(proc, 2, "--precision fp16 is for the torch backend", "dcgan-rt export --fp16")


def test_odd_batches_reuse_a_few_cuda_graphs():
    from dcgan_rt.backends.torch_cuda import graph_size

    assert [graph_size(n) for n in (1, 2, 3, 5, 64, 65, 1000, 4096)] == [1, 2, 4, 8, 64, 128, 1024, 4096]


@pytest.fixture(scope="module")
def default_shape_model(tmp_path_factory):
    """The default 64x64 RGB generator shape (narrower: g_width 16), real BatchNorm statistics."""
    return make_model_dir(tmp_path_factory.mktemp("m64") / "run", seed=5, z_dim=100, img_resolution=64,
                          img_channels=3, g_width=16, code_dim=0)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_meets_the_design_bounds(require_cuda, default_shape_model, precision):
    from dcgan_rt.backends.torch_cuda import TorchCudaBackend

    g, card = load_generator(default_shape_model)
    z = latent_range(11, 0, 96, card.model_config.z_dim)
    reference = reference_images(g, z)
    with TorchCudaBackend(default_shape_model, uint8=False, precision=precision) as b:
        out = np.concatenate([b(z[:1]), b(z[1:33]), b(z[33:])])  # three batch sizes: three graphs
        max_abs, mean_abs = errors(FLOAT_NCHW, out, reference)
        bound = BOUNDS[(precision, FLOAT_NCHW)]
        assert max_abs <= bound.max_abs and (bound.mean_abs is None or mean_abs <= bound.mean_abs), (max_abs, mean_abs)
    with TorchCudaBackend(default_shape_model, precision=precision) as b:
        pixels = np.concatenate(list(b.map_images([z[:40], z[40:41], z[41:]])))  # two in flight, in order
        max_lv, mean_lv = errors(UINT8_NHWC, pixels, reference)
        bound = BOUNDS[(precision, UINT8_NHWC)]
        assert max_lv <= bound.max_abs and (bound.mean_abs is None or mean_lv <= bound.mean_abs)


@pytest.mark.gpu
def test_cuda_graphs_change_nothing(require_cuda, default_shape_model):
    from dcgan_rt.backends.torch_cuda import TorchCudaBackend

    z = latent_range(2, 0, 64, 100)
    with TorchCudaBackend(default_shape_model, graphs=True) as a, TorchCudaBackend(default_shape_model, graphs=False) as b:
        np.testing.assert_array_equal(a(z), b(z))
        np.testing.assert_array_equal(a(z[:5]), b(z[:5]))


@pytest.mark.gpu
def test_auto_picks_torch_on_cuda_without_gpu_runtimes(require_cuda, tiny_model_dir):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: auto prefers an engine")
    with select_backend(tiny_model_dir) as b:
        if "onnxruntime" in b.name:
            pytest.skip("onnxruntime-gpu is installed: auto prefers it")
        assert b.name == "torch" and b.device.startswith("cuda") and "PyTorch on the GPU" in b.reason


@pytest.mark.gpu
def test_generate_on_gpu_n_with_fp16_records_both(require_cuda, tiny_model_dir, tmp_path, cli):
    last = torch.cuda.device_count() - 1
    out = tmp_path / "out"
    proc = cli("generate", tiny_model_dir, "-n", "64", "--out", out, "--format", "npy", "--backend", "torch",
               "--gpu", str(last), "--precision", "fp16", check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["complete"]
    assert f"cuda:{last}" in proc.stdout
    # fp32 in the same folder is another job: refused without --overwrite.
    again = cli("generate", tiny_model_dir, "-n", "64", "--out", out, "--format", "npy", "--backend", "torch")
    assert again.returncode != 0
    bad = cli("generate", tiny_model_dir, "-n", "2", "--out", tmp_path / "o2", "--backend", "torch",
              "--gpu", str(last + 1))
    assert_clean_error(bad, 2, f"--gpu {last + 1}")
