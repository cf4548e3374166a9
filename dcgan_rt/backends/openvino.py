"""The OpenVINO backend: a dcgan-rt ONNX file on the CPU through OpenVINO Runtime.

Core tier; openvino is imported when the backend is built (extra `[openvino]`).
On the CPU it is the fastest runtime measured for these generators (oneDNN's
JIT convolutions over the whole batch; docs/performance.md), most of all on the
sub-pixel graph that `dcgan-rt export` writes (dcgan_rt.export.optimize).

The model is compiled once, with a dynamic batch axis, as one single-threaded
stream per core (the THROUGHPUT hint with NUM_STREAMS = threads); each call splits
its batch into one slice per stream and runs them side by side. Measured on the
default 64x64 generator: 87-92% of the matmul ceiling, against 82-85% for one
stream with every core on it (the LATENCY hint), which synchronises its threads
at every layer.

Inference precision is pinned to f32: on CPUs with AVX512-BF16 or AMX, OpenVINO's
CPU plugin computes in bfloat16 unless told otherwise, and that misses the fp32
parity bound (DESIGN §5) by 30x (max abs 2.8e-3; `dcgan-rt doctor` found it).
fp16 files still compute what their graph says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcgan_rt.backends import Backend
from dcgan_rt.batch import Batch
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import ArtifactError, MissingDependencyError
from dcgan_rt.onnx_card import output_kind, read_onnx_card


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino", "the openvino backend", extra="openvino") from None
    return openvino


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None):
        ov = import_openvino()
        path = Path(path)
        card, io = read_onnx_card(path)
        threads = threads or usable_cores()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads,
                                                         "INFERENCE_NUM_THREADS": threads,
                                                         "INFERENCE_PRECISION_HINT": "f32"})
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"OpenVINO cannot load {path} ({first}): re-export it with dcgan-rt export") from None
        super().__init__(card, device="cpu", detail=f"CPU, {threads} streams of 1 thread",
                         precision=io["precision"],
                         output=output_kind(io))
        self.path = path
        self._inputs = [spec["name"] for spec in io["inputs"]]  # z, then label for a conditional model
        self._requests = [compiled.create_infer_request() for _ in range(threads)]
        self._compiled = compiled

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        parts = batch.split(len(self._requests))
        requests = self._requests[:len(parts)]
        for request, part in zip(requests, parts, strict=True):
            request.start_async(dict(zip(self._inputs, (part.z, part.labels))), share_inputs=True)
        for request in requests:
            request.wait()
        # concatenate copies each result out of its request's buffer, which the next call overwrites.
        return np.concatenate([request.get_output_tensor(0).data for request in requests])

    def close(self) -> None:
        self._requests = []
        self._compiled = None
