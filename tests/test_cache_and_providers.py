"""The cache root (DCGAN_RT_CACHE, XDG rules, unwritable homes) and ONNX Runtime's provider
options: TensorRT-EP engines keyed by the ONNX file's sha256, TF32 off on the CUDA EP, and
the same options for generate, export's parity check and doctor."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CONFIG, make_model_dir
from dcgan_rt.backends.ort_options import CPU_EP, CUDA_EP, TRT_EP, provider_list, tensorrt_provider_options
from dcgan_rt.cache import CacheDirError, cache_dir, cache_root
from dcgan_rt.digest import sha256_file
from dcgan_rt.errors import MissingDependencyError

ALL_PROVIDERS = [TRT_EP, CUDA_EP, CPU_EP]


@pytest.fixture
def clean_cache_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DCGAN_RT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_cache_root_honours_dcgan_rt_cache_and_is_absolute(clean_cache_env, monkeypatch):
    monkeypatch.chdir(clean_cache_env)
    monkeypatch.setenv("DCGAN_RT_CACHE", "relative/cache")
    assert cache_root() == clean_cache_env / "relative" / "cache"
    monkeypatch.setenv("DCGAN_RT_CACHE", str(clean_cache_env / "c"))
    assert cache_root() == clean_cache_env / "c"


@pytest.mark.parametrize("xdg", ["", "relative/xdg"])
def test_empty_or_relative_xdg_cache_home_falls_back_to_home(clean_cache_env, monkeypatch, xdg):
    monkeypatch.chdir(clean_cache_env)
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    root = cache_root()
    assert root.is_absolute()
    assert root == clean_cache_env / "home" / ".cache" / "dcgan-rt"


def test_absolute_xdg_cache_home_is_used(clean_cache_env, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean_cache_env / "xdg"))
    assert cache_root() == clean_cache_env / "xdg" / "dcgan-rt"


def test_unusable_home_is_one_clear_error(clean_cache_env, monkeypatch):
    # A home that cannot hold a cache folder (here: a file; as root, chmod does not stop mkdir).
    home = clean_cache_env / "home"
    home.write_text("not a folder")
    with pytest.raises(CacheDirError, match=r"cannot create the cache folder .*: set DCGAN_RT_CACHE"):
        cache_dir("ort-tensorrt")


@pytest.fixture(scope="module")
def two_onnx(tmp_path_factory):
    """Two exports of the same config and file name with different weights."""
    from dcgan_rt.export.onnx_export import export_onnx
    from dcgan_rt.train.release import load_generator

    paths = []
    for seed in (0, 1):
        root = tmp_path_factory.mktemp(f"model{seed}")
        g, card = load_generator(make_model_dir(root / "run", seed=seed))
        paths.append(export_onnx(g, card, root / "generator.onnx"))
    return paths


def test_tensorrt_ep_engine_cache_is_keyed_by_the_onnx_sha256(two_onnx, clean_cache_env, monkeypatch):
    monkeypatch.setenv("DCGAN_RT_CACHE", str(clean_cache_env / "cache"))
    a, b = (tensorrt_provider_options(p, 0) for p in two_onnx)
    assert a["trt_engine_cache_path"] != b["trt_engine_cache_path"]
    for path, options in zip(two_onnx, (a, b)):
        folder = Path(options["trt_engine_cache_path"])
        assert folder == clean_cache_env / "cache" / "ort-tensorrt" / sha256_file(path)
        assert folder.is_dir()
    # The timing cache only holds kernel timings, valid for any weights: shared.
    assert a["trt_timing_cache_path"] == b["trt_timing_cache_path"]
    # Same bytes under another name: the same engine folder.
    copy = clean_cache_env / "elsewhere.onnx"
    shutil.copy(two_onnx[0], copy)
    assert tensorrt_provider_options(copy, 0)["trt_engine_cache_path"] == a["trt_engine_cache_path"]


def test_cuda_ep_runs_without_tf32_whichever_way_it_is_chosen(tiny_onnx, clean_cache_env):
    for choice in ("auto", "cuda", "tensorrt"):
        providers, _ = provider_list(choice, ALL_PROVIDERS, 1, tiny_onnx)
        cuda = dict(p for p in providers if isinstance(p, tuple))[CUDA_EP]
        assert cuda["use_tf32"] == "0" and cuda["device_id"] == "1"
    auto, _ = provider_list("auto", ALL_PROVIDERS, 0, tiny_onnx)
    assert [p[0] if isinstance(p, tuple) else p for p in auto] == ALL_PROVIDERS
    trt = auto[0][1]
    assert trt["trt_profile_max_shapes"] == f"z:1024x{TINY_CONFIG['z_dim']}"
    assert provider_list("cpu", ALL_PROVIDERS, 0, tiny_onnx)[0] == [CPU_EP]
    # onnxruntime-gpu on a machine without a CUDA GPU: auto asks for the CPU provider alone
    # (the CPU backend's own settings), a provider named on purpose is still asked for.
    providers, why = provider_list("auto", ALL_PROVIDERS, 0, tiny_onnx, gpu=False)
    assert providers == [CPU_EP] and "no CUDA GPU" in why
    assert provider_list("cuda", ALL_PROVIDERS, 0, tiny_onnx, gpu=False)[0][0][0] == CUDA_EP
    with pytest.raises(MissingDependencyError, match=r"onnxruntime-gpu.*dcgan-rt\[gpu\]"):
        provider_list("cuda", [CPU_EP], 0, tiny_onnx)


def test_parity_checks_build_the_backend_generate_builds(tiny_onnx):
    from dcgan_rt.backends import select_backend
    from dcgan_rt.export.parity import onnxruntime_runner

    runner = onnxruntime_runner(tiny_onnx, CPU_EP)
    with select_backend(tiny_onnx, "onnxruntime") as generate_backend:
        assert runner.__self__.provider_options == generate_backend.provider_options
        z = np.random.default_rng(0).standard_normal((5, TINY_CONFIG["z_dim"]), dtype=np.float32)
        np.testing.assert_array_equal(runner(z), generate_backend(z))


def test_generate_on_the_cpu_does_not_need_a_cache(tiny_onnx, tmp_path, cli):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    proc = cli("generate", tiny_onnx, "-n", "4", "--out", tmp_path / "out", "--format", "npy",
               env={"DCGAN_RT_CACHE": str(blocker)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cuda_python_calls_fail_as_one_clear_line_without_a_driver():
    # The real cuda-python runtime, on a machine without an NVIDIA driver: every call's error
    # code becomes a DcganRtError naming the call, not a tuple nobody checked.
    from dcgan_rt.backends import cuda_memory
    from dcgan_rt.errors import DcganRtError, MissingDependencyError
    from dcgan_rt.gpu import find_gpu

    if find_gpu()[0] is not None:
        pytest.skip("a CUDA driver and GPU are here: the calls would succeed")
    try:
        cuda_memory.cudart()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    for make, call in ((lambda: cuda_memory.DeviceBuffer(16), "cudaMalloc"),
                       (lambda: cuda_memory.PinnedBuffer(16), "cudaMallocHost"),
                       (cuda_memory.Stream, "cudaStreamCreateWithFlags"),
                       (lambda: cuda_memory.set_device(0), r"cudaSetDevice\(0\)")):
        with pytest.raises(DcganRtError, match=rf"^CUDA call {call} failed \(cuda\w+\)$"):
            make()
