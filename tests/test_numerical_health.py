"""A generator that outputs NaN or inf is refused, at export and at generate, with a clear message.

Broken weights are planted the way training breaks them: a BatchNorm running
variance gone negative (sqrt of it is NaN), or a weight that overflowed to inf.
`export` refuses before writing anything (the PyTorch reference itself is checked,
then every variant by the parity check); `generate`, `sample` and `interpolate`
refuse at the per-batch check (one min and one max per batch), before an image
is written, instead of saving black or white squares.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import load_file, save_file

from conftest import assert_clean_error, make_model_dir, run_cli
from dcgan_rt.errors import NumericalError
from dcgan_rt.images import to_uint8
from dcgan_rt.train.release import load_generator, save_generator
from export_helpers import invoke


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory) -> Path:
    """A run directory whose first BatchNorm has a negative running variance in one channel."""
    run = make_model_dir(tmp_path_factory.mktemp("nan") / "run")
    weights = run / "generator.safetensors"
    state = load_file(str(weights))
    key = next(k for k in state if k.endswith("running_var"))
    state[key][0] = -1.0
    save_file(state, str(weights), metadata={"format": "dcgan-rt/generator"})
    return run


@pytest.fixture(scope="module")
def nan_onnx(nan_run, tmp_path_factory) -> Path:
    """The same broken generator as ONNX, written by the library (export itself would refuse it)."""
    from dcgan_rt.export.onnx_export import export_onnx

    g, card = load_generator(nan_run)
    with torch.no_grad():
        assert torch.isnan(g(torch.randn(4, card.model_config.z_dim))).any()
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # the optimizer notices the sqrt(-1) too
        warnings.simplefilter("ignore", RuntimeWarning)
        return export_onnx(g, card, tmp_path_factory.mktemp("nan_onnx") / "generator.onnx")


@pytest.fixture(scope="module")
def inf_onnx(tiny_onnx, tmp_path_factory) -> Path:
    """The healthy tiny ONNX with its images divided by zero: every pixel is +inf or -inf."""
    model = onnx.load(str(tiny_onnx))
    last = next(n for n in model.graph.node if "images" in n.output)
    last.output[list(last.output).index("images")] = "images_finite"
    model.graph.node.append(helper.make_node("Constant", [], ["zero"], value=helper.make_tensor(
        "zero", TensorProto.FLOAT, [], [0.0])))
    model.graph.node.append(helper.make_node("Div", ["images_finite", "zero"], ["images"]))
    path = tmp_path_factory.mktemp("inf_onnx") / "generator.onnx"
    onnx.save(model, str(path))
    return path


def test_export_refuses_a_generator_whose_own_output_is_nan(nan_run):
    proc = invoke("export", nan_run, "--no-engine")
    assert_clean_error(proc, 1, "the generator itself outputs NaN or infinite values", "its weights are broken",
                       "nothing was written")
    assert not (nan_run / "export").exists()


def test_export_parity_refuses_a_variant_that_overflows_to_inf(tmp_path):
    """Finite in fp32, but BatchNorm scales of 1e7 fold into fp16 weights above 65504: inf."""
    run = make_model_dir(tmp_path / "overflow")
    g, card = load_generator(run)
    with torch.no_grad():
        g.main[1].weight.mul_(1e7)
        assert torch.isfinite(g(torch.randn(8, card.model_config.z_dim))).all()
    save_generator(g, card, run)
    proc = invoke("export", run, "--fp16", "--no-engine")
    assert_clean_error(proc, 1, "parity check failed", "fp16 on onnxruntime-cpu: its output holds NaN or infinite",
                       "nothing was written")
    assert re.search(r"^\s*fp16\s+onnxruntime-cpu\s+nan\s+nan\s.*FAIL", proc.stdout, re.M), proc.stdout
    assert not (run / "export").exists()


@pytest.mark.parametrize("model", ["nan_onnx", "inf_onnx", "nan_run"])
def test_generate_refuses_nan_or_inf_batches_and_writes_no_image(model, request, tmp_path):
    path = request.getfixturevalue(model)
    out = tmp_path / "out"
    # ONNX Runtime: OpenVINO's ReLU maps NaN to 0, so NaN weights there give finite garbage
    # rather than NaN images (export refuses such a generator before it gets that far).
    backend = ["--backend", "onnxruntime"] if model.endswith("_onnx") else []
    proc = run_cli("generate", path, "-n", 40, "--batch-size", 8, "--out", out, *backend)
    assert_clean_error(proc, 1, "produced NaN or infinite values", "weights are broken")
    assert not list(out.glob("*.png"))
    manifest = json.loads((out / "manifest.json").read_text())  # the job is on record as unfinished
    assert manifest["complete"] is False and manifest["images_done"] == 0


def test_sample_and_interpolate_refuse_them_too(nan_onnx, inf_onnx, tmp_path):
    assert_clean_error(run_cli("sample", inf_onnx, "--out", tmp_path / "grid.png"), 1, "NaN or infinite")
    assert_clean_error(run_cli("interpolate", nan_onnx, "--out", tmp_path / "walk.gif", "--backend", "onnxruntime"),
                       1, "NaN or infinite")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_per_batch_check_catches_one_bad_value_anywhere(bad):
    images = np.zeros((64, 3, 32, 32), np.float32)
    images[37, 2, 31, 5] = bad
    with pytest.raises(NumericalError, match="NaN or infinite"):
        to_uint8(images)
    images[37, 2, 31, 5] = 1.0
    assert to_uint8(images).shape == (64, 32, 32, 3)
