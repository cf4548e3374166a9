"""The ONNX Runtime settings dcgan-rt runs generators with: CPU session, CUDA and TensorRT EPs.

Core tier; the caller passes the imported onnxruntime module, so importing this
module costs nothing. `generate`, `export`'s parity check, `bench` and `doctor` all
take their provider options from here, so what doctor checks is what generate runs.

GPU providers:
- CUDA EP: `use_tf32: 0`. ONNX Runtime turns TF32 on by default, and TF32's 10-bit
  mantissa breaks the fp32 parity bound (DESIGN §5) on Ampere and newer GPUs.
- TensorRT EP: engines cached in a folder named after the ONNX file's sha256.
  ONNX Runtime names a cached engine from the file name, graph names and library
  versions, not the weights, so a retrained `generator.onnx` of the same config
  would otherwise run the previous model's engine. The timing cache (kernel
  timings, valid for any weights) is shared. One optimisation profile for batch
  1..TRT_MAX_BATCH, so one engine serves every batch size.

CPU session settings were measured on the default 64x64 generator
(docs/performance.md has the numbers):

- intra-op threads = the cores this process may use (or what the caller leaves the
  model after reserving cores for image encoders); one inter-op thread, sequential
  execution: the graph is a chain, there is nothing to run side by side.
- spinning off: a spinning pool burns the cores the writer threads need between
  batches, and after a run it slows whatever runs next in the process (another
  session, numpy); at ~50-100 ms per batch waking the pool costs nothing measurable.
- ORT_ENABLE_ALL: the NCHWc layout transformer only runs at this level, and it is
  what makes the convolutions of the sub-pixel graph (dcgan_rt.export.optimize) fast.
- the memory arena and memory-pattern planning stay on (defaults): the shapes repeat
  batch after batch, so buffers are reused instead of allocated.
"""

from __future__ import annotations

from pathlib import Path

from dcgan_rt.environment import usable_cores

TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
TRT_MAX_BATCH = 1024


def cpu_session_options(ort, threads: int | None = None, *, spinning: bool = False, quiet: bool = True):
    """onnxruntime.SessionOptions for a generator on the CPU provider.

    ort: the onnxruntime module; threads: intra-op threads (None: every usable core).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if quiet:
        options.log_severity_level = 3  # errors only: provider fallbacks are reported by the backend
    return options


class BatchSplitter:
    """Run one batch as `workers` slices side by side, one single-threaded ONNX Runtime
    run per core, and concatenate the outputs in order.

    Measured on the default 64x64 generator (2 cores, batch 64-128): 82-85% of the
    matmul ceiling, against 61-70% for one run with 2 intra-op threads. ONNX Runtime's
    transposed convolution is a per-image GEMM followed by a col2im that runs on one
    thread, and every layer waits for the slowest thread; slices of the batch share
    nothing. `session.run` may be called from several threads at once.
    """

    def __init__(self, run_one, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        self.workers = workers
        self._run_one = run_one
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dcgan-rt-ort") if workers > 1 else None

    def __call__(self, batch):
        """batch: a dcgan_rt.batch.Batch; its slices go to run_one."""
        import numpy as np

        if self._pool is None or len(batch) < 2:
            return self._run_one(batch)
        return np.concatenate(list(self._pool.map(self._run_one, batch.split(self.workers))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def cuda_provider_options(device_id: int) -> dict:
    return {"device_id": str(device_id), "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}


def tensorrt_engine_cache(path: str | Path) -> Path:
    """The TensorRT EP's engine folder for this ONNX file: one per content sha256 (created)."""
    from dcgan_rt.cache import cache_dir
    from dcgan_rt.digest import sha256_file

    return cache_dir("ort-tensorrt", sha256_file(path))


def tensorrt_provider_options(path: str | Path, device_id: int) -> dict:
    from dcgan_rt.cache import cache_dir
    from dcgan_rt.onnx_card import read_onnx_card

    inputs = read_onnx_card(Path(path))[0].inputs  # z, and a conditional model's label
    return {
        "device_id": str(device_id),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(tensorrt_engine_cache(path)),
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": str(cache_dir("ort-tensorrt")),
        "trt_profile_min_shapes": profile_shapes(inputs, 1),
        "trt_profile_opt_shapes": profile_shapes(inputs, 256),
        "trt_profile_max_shapes": profile_shapes(inputs, TRT_MAX_BATCH),
    }


def profile_shapes(inputs: list[dict], batch: int) -> str:
    """The TensorRT EP's shape string for every input at one batch size: 'z:256x100,label:256'."""
    return ",".join(f"{spec['name']}:" + "x".join(str(batch) if d == "N" else str(d) for d in spec["shape"])
                    for spec in inputs)


def provider_list(choice: str, available: list[str], device_id: int, path: str | Path,
                  gpu: bool = True) -> tuple[list, str]:
    """The providers (with options) to ask ONNX Runtime for, best first, and why.

    choice: "auto" (the best present), or "cpu" / "cuda" / "tensorrt" for that one
    provider (CPU behind it only for nodes a GPU provider does not take). gpu: whether
    a CUDA GPU is here; without one "auto" asks for the CPU provider alone, which runs
    as the CPU backend is tuned to (a GPU provider would only fall back to the CPU)."""
    from dcgan_rt.errors import MissingDependencyError

    has_trt, has_cuda = TRT_EP in available, CUDA_EP in available
    if choice == "tensorrt" and not has_trt:
        raise MissingDependencyError("onnxruntime-gpu", "ONNX Runtime's TensorRT provider", extra="gpu")
    if choice == "cuda" and not has_cuda:
        raise MissingDependencyError("onnxruntime-gpu", "ONNX Runtime's CUDA provider", extra="gpu")
    if choice == "auto" and not gpu and (has_trt or has_cuda):
        return [CPU_EP], "CPU provider (this onnxruntime has GPU providers, but no CUDA GPU is here)"
    cuda = (CUDA_EP, cuda_provider_options(device_id))
    if choice in ("auto", "tensorrt") and has_trt and has_cuda:
        trt = (TRT_EP, tensorrt_provider_options(path, device_id))
        return [trt, cuda, CPU_EP], "ONNX Runtime has the TensorRT provider (first run builds and caches an engine)"
    if choice in ("auto", "cuda") and has_cuda:
        return [cuda, CPU_EP], "ONNX Runtime has the CUDA provider"
    if choice == "cpu":
        return [CPU_EP], "CPU provider"
    return [CPU_EP], "no GPU provider in this onnxruntime (pip install 'dcgan-rt[gpu]' for CUDA)"
