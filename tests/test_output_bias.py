"""The generator's output bias (ModelConfig.g_out_bias): on by default below 64 px, absent
from older artifacts, and carried through export, the torch backend and generate."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import make_model_dir, run_cli
from dcgan_rt.config import ModelConfig
from dcgan_rt.errors import ArtifactError
from dcgan_rt.latents import latent_range
from dcgan_rt.train.networks import build_generator
from dcgan_rt.train.options import TrainOptions
from dcgan_rt.train.release import load_generator, save_generator


def test_default_below_64_px_has_the_bias_and_64_px_keeps_the_plain_dcgan():
    assert TrainOptions(img_resolution=32).model_config.g_out_bias is True
    assert TrainOptions(img_resolution=64).model_config.g_out_bias is False
    assert TrainOptions(img_resolution=32, g_out_bias=False).model_config.g_out_bias is False
    last = build_generator(ModelConfig(g_out_bias=True)).main[-2]
    assert last.bias is not None and torch.equal(last.bias, torch.zeros_like(last.bias))  # starts at 0
    assert build_generator(ModelConfig()).main[-2].bias is None


def test_artifacts_and_runs_recorded_before_the_bias_load_without_it():
    card = ModelConfig(img_resolution=32).to_dict()
    del card["g_out_bias"]
    assert ModelConfig.from_dict(card).g_out_bias is False
    assert TrainOptions.from_dict({"img_resolution": 32}).g_out_bias is False  # an old run resumes as it trained
    with pytest.raises(ArtifactError, match="g_out_bias.*true or false"):
        ModelConfig.from_dict({**card, "g_out_bias": 1})


@pytest.fixture(scope="module")
def biased_run(tmp_path_factory):
    """A tiny release whose output bias is far from 0, so a path that dropped it would show."""
    run = make_model_dir(tmp_path_factory.mktemp("bias") / "run", g_out_bias=True)
    g, card = load_generator(run)
    with torch.no_grad():
        g.main[-2].bias.fill_(-0.6)
    save_generator(g, card, run)
    return run, g


def test_export_carries_the_bias_into_every_variant_and_onnx_matches_pytorch(biased_run):
    run, g = biased_run
    run_cli("export", run, "--fp16", "--uint8", "--int8", "--no-engine", check=True)  # parity checked inside
    assert json.loads((run / "generator.json").read_text())["model_config"]["g_out_bias"] is True
    z = latent_range(0, 0, 16, g.cfg.z_dim)
    with torch.no_grad():
        expected = g(torch.from_numpy(z)).numpy()
        g.main[-2].bias.zero_()
        unbiased = g(torch.from_numpy(z)).numpy()
        g.main[-2].bias.fill_(-0.6)
    got = ort.InferenceSession(str(run / "export" / "generator.onnx"),
                               providers=["CPUExecutionProvider"]).run(None, {"z": z})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - unbiased).mean() > 0.1  # the bias is in the graph, not dropped


def test_generate_on_the_torch_backend_and_onnx_agree_with_the_bias(biased_run, tmp_path):
    run, _ = biased_run
    outs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        model = run if backend == "torch" else run / "export" / "generator.onnx"
        run_cli("generate", model, "-n", "8", "--format", "npy", "--backend", backend, "--out", out, check=True)
        outs[backend] = np.concatenate([np.load(p) for p in sorted(out.glob("*.npy"))])
    assert np.abs(outs["torch"].astype(int) - outs["onnxruntime"].astype(int)).max() <= 1
