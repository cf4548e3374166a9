"""`dcgan-rt bench`: the JSON a machine reads has the right shape and sane values; the
FLOP count matches a hand count; the CPU graph rewrite keeps the same images.

No timed assertions: speed targets live in benchmarks/ and docs/performance.md.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pytest

from conftest import assert_clean_error, make_model_dir, run_cli
from dcgan_rt.bench import generator_flops, generator_layers
from dcgan_rt.config import ModelConfig


def test_flops_of_the_default_64px_generator_match_a_hand_count():
    cfg = ModelConfig(z_dim=100, img_resolution=64, img_channels=3, g_width=64)
    # C_in * C_out * k*k * H_in * W_in for each ConvTranspose2d: z->4x4, 4->8, 8->16, 16->32, 32->64
    macs = 100 * 512 * 16 * 1 + 512 * 256 * 16 * 16 + 256 * 128 * 16 * 64 + 128 * 64 * 16 * 256 + 64 * 3 * 16 * 1024
    assert generator_flops(cfg) == 2 * macs == 209_256_448
    assert [(layer.c_in, layer.c_out, layer.h_in) for layer in generator_layers(cfg)] == [
        (100, 512, 1), (512, 256, 4), (256, 128, 8), (128, 64, 16), (64, 3, 32)]


def without_torch(tmp_path) -> dict:
    """Environment for a subprocess in which `import torch` fails, as on an ONNX-only install."""
    site = tmp_path / "no-torch-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError("No module named 'torch' (blocked by the test)")
        sys.meta_path.insert(0, _Blocker())
    """))
    return {"PYTHONPATH": str(site)}


def test_bench_json_has_every_section_with_sane_values(tiny_onnx, tmp_path):
    """Benchmarking an ONNX file needs no torch (blocked here), for the model or the ceiling."""
    proc = run_cli("bench", tiny_onnx, "--json", "--backend", "onnxruntime,openvino", "--batch-size", "1,4",
                   "--warmup", "1", "--repeats", "3", "--formats", "npy", "--images", "32",
                   env=without_torch(tmp_path), check=True)
    report = json.loads(proc.stdout)
    assert set(report) >= {"model", "machine", "settings", "ceiling", "results", "best", "generate", "skipped"}

    cfg = report["model"]["config"]
    assert report["model"]["flops_per_image"] == generator_flops(ModelConfig(**cfg)) > 0
    assert "C_in * C_out" in report["model"]["flops_method"]

    machine = report["machine"]
    assert machine["cpu"] and machine["usable_cores"] >= 1
    assert machine["libraries"]["numpy"] == np.__version__
    assert "onnxruntime" in machine["libraries"]

    cpu = report["ceiling"]["cpu"]
    # the fastest float32 GEMM installed, named; torch is blocked here, so it is not among them
    assert set(cpu["by_library"]) == {"numpy", "onnxruntime", "openvino"}
    assert cpu["flops_per_s"] == max(cpu["by_library"].values()) > 1e8
    assert cpu["source"].startswith(cpu["library"]) and "matmul" in cpu["source"]
    assert cpu["images_per_s"] == pytest.approx(cpu["flops_per_s"] / report["model"]["flops_per_image"])

    rows = report["results"]
    assert {(r["backend"], r["batch_size"]) for r in rows} == {
        ("onnxruntime", 1), ("onnxruntime", 4), ("openvino", 1), ("openvino", 4)}
    for r in rows:
        assert r["model"] == "generator.onnx" and r["precision"] == "fp32" and r["device"] == "cpu"
        assert r["images_per_s"] > 0 and r["runs"] == 3
        assert r["latency_ms"]["p99"] >= r["latency_ms"]["p50"] > 0
        # images/s is batch / median time, so it and p50 describe the same runs
        assert r["images_per_s"] == pytest.approx(r["batch_size"] / (r["latency_ms"]["p50"] / 1e3), rel=1e-6)
        assert 0 < r["ceiling_share"] <= 1.5
    assert {r["backend"] for r in report["best"]} == {"onnxruntime", "openvino"}

    (gen,) = report["generate"]
    assert gen["format"] == "npy" and gen["images"] == 32 and gen["images_per_s"] > 0


def test_bench_of_a_run_directory_times_torch_and_the_exported_files(tiny_model_dir, tiny_onnx, tmp_path):
    """A run directory brings its PyTorch weights and whatever `dcgan-rt export` wrote in export/."""
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    (run / "export").mkdir()
    shutil.copy(tiny_onnx, run / "export" / "generator.onnx")
    proc = run_cli("bench", run, "--json", "--backend", "torch,onnxruntime", "--batch-size", "2",
                   "--warmup", "0", "--repeats", "2", "--formats", "none", check=True)
    report = json.loads(proc.stdout)
    assert {(r["backend"], r["model"]) for r in report["results"]} == {
        ("torch", "generator.safetensors"), ("onnxruntime", "generator.onnx")}
    assert report["generate"] == []


def test_bench_table_names_the_ceiling_and_the_skipped_gpu_backends(tiny_onnx):
    proc = run_cli("bench", tiny_onnx, "--backend", "onnxruntime,tensorrt,onnxruntime-cuda", "--batch-size", "2",
                   "--warmup", "0", "--repeats", "2", "--formats", "none", check=True)
    out = proc.stdout
    assert "ceiling" in out and "images/s" in out and "MFLOP/image" in out
    assert "onnxruntime" in out and "generator.onnx" in out
    assert "skipped onnxruntime-cuda" in out  # no CUDA provider in a CPU install; said, not silent


@pytest.mark.parametrize("args, needle", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "x,2"], "--batch-size"),
    (["--backend", "cuda-magic"], "unknown --backend"),
    (["--formats", "jpeg"], "--format"),
    (["--repeats", "0"], "--repeats"),
])
def test_bench_bad_options_fail_cleanly(tiny_onnx, args, needle):
    assert_clean_error(run_cli("bench", tiny_onnx, *args), 2, needle)


def test_bench_missing_model_fails_cleanly(tmp_path):
    assert_clean_error(run_cli("bench", tmp_path / "nope.onnx"), 1, "not found")


@pytest.mark.parametrize("config", [
    dict(),  # 16x16 grayscale, widths 8: the last layer has 1 channel (the one-convolution form)
    dict(img_resolution=32, img_channels=3, g_width=16),
])
def test_cpu_rewrite_keeps_the_images_and_turns_every_transposed_convolution_into_convolutions(tmp_path, config):
    import onnx
    import onnxruntime as ort

    from dcgan_rt.export.onnx_export import to_onnx_model
    from dcgan_rt.export.optimize import is_optimized, optimize_for_cpu
    from dcgan_rt.latents import latent_range
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(make_model_dir(tmp_path / "m", **config))
    plain = to_onnx_model(g)
    fast = optimize_for_cpu(plain)
    onnx.checker.check_model(fast, full_check=True)
    assert is_optimized(fast) and not is_optimized(plain)
    assert "ConvTranspose" in {n.op_type for n in plain.graph.node}
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in fast.graph.initializer}
    left = [n for n in fast.graph.node if n.op_type == "ConvTranspose"]  # only the image's 0/1 interleave
    assert len(left) == 1 and set(np.unique(inits[left[0].input[1]])) == {0.0, 1.0}
    assert optimize_for_cpu(fast) is fast  # idempotent

    z = latent_range(7, 0, 5, card.model_config.z_dim)
    def run(model):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"z": z})[0]

    want, got = run(plain), run(fast)
    assert got.shape == want.shape == (5, *card.model_config.image_shape)
    assert np.abs(got - want).max() <= 1e-5  # DESIGN §5 allows 1e-4 against PyTorch
