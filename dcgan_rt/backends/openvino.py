"""The OpenVINO backend: a dcgan-rt ONNX file on the CPU through OpenVINO Runtime.

Core tier; openvino is imported when the backend is built (extra `[openvino]`).
On the CPU it is the fastest runtime measured for these generators (oneDNN's
JIT convolutions over the whole batch; docs/performance.md), most of all on the
sub-pixel graph that `dcgan-rt export` writes (dcgan_rt.export.optimize).

The model is compiled once with a dynamic batch axis and the LATENCY hint (one
stream using every core this process may use, or `threads`): a generate job
sends one batch at a time, so one stream keeps all cores on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcgan_rt.backends import FLOAT_NCHW, UINT8_NHWC, Backend
from dcgan_rt.backends.ort_options import usable_cores
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
            compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                         "INFERENCE_NUM_THREADS": threads})
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"OpenVINO cannot load {path} ({first}): re-export it with dcgan-rt export") from None
        super().__init__(card, device="cpu", detail=f"CPU, {threads} threads", precision=io["precision"],
                         output=UINT8_NHWC if output_kind(io) == "uint8-nhwc" else FLOAT_NCHW)
        self.path = path
        self._request = compiled.create_infer_request()
        self._compiled = compiled

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = self._check_z(z)
        # share_outputs=False (the default) copies the result out of the request's
        # buffer, which the next call overwrites.
        return self._request.infer({0: z}, share_inputs=True)[0]

    def close(self) -> None:
        self._request = None
        self._compiled = None
