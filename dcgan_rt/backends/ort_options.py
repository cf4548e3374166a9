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
