"""The ONNX Runtime session settings dcgan-rt runs generators with on the CPU.

Core tier; the caller passes the imported onnxruntime module, so importing this
module costs nothing. Each setting was measured on the default 64x64 generator
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

import os


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


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

    def __call__(self, z):
        import numpy as np

        if self._pool is None or len(z) < 2:
            return self._run_one(z)
        parts = np.array_split(z, min(self.workers, len(z)))
        return np.concatenate(list(self._pool.map(self._run_one, parts)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
