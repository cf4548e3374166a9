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

The compiled model is cached (OpenVINO's CACHE_DIR) under the dcgan-rt cache root,
in openvino/<sha256 of the file>/ (`dcgan-rt cache list` shows it as its own kind):
a later run imports it instead of compiling (on the default 64x64 generator 0.04 s
instead of 0.09 s; the blob is ~14 MB, the size of the weights).

Inference precision is pinned to f32: on CPUs with AVX512-BF16 or AMX, OpenVINO's
CPU plugin computes in bfloat16 unless told otherwise, and that misses the fp32
parity bound (DESIGN §5) by 30x (max abs 2.8e-3; `dcgan-rt doctor` found it).
fp16 files still compute what their graph says.

`generate` runs through `map_images`, which gives each stream whole batches of its
own and keeps every stream busy while the caller converts and hands on the last
result: no stream waits for the other at the end of each batch, and the uint8
conversion overlaps inference. Each stream also has a second batch queued behind the
one it runs (QUEUED_PER_STREAM), so it never waits for the Python thread to be
scheduled beside two busy streams: `generate --format npy` 8-20 % faster on the int8
file, 2-11 % on fp32 (docs/performance.md, "What was tried").
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends import UINT8_NHWC, Backend
from dcgan_rt.backends.inflight import pipelined
from dcgan_rt.batch import Batch
from dcgan_rt.cache import CacheDirError, cache_dir
from dcgan_rt.digest import sha256_file
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import ArtifactError
from dcgan_rt.extras import import_optional
from dcgan_rt.images import to_uint8
from dcgan_rt.onnx_card import output_kind, read_onnx_card


QUEUED_PER_STREAM = 1  # batches waiting on each stream in map_images, beside the one it runs


def import_openvino():
    return import_optional("openvino", "the openvino backend", extra="openvino")


def compile_cache(path: Path) -> Path | None:
    """The folder OpenVINO keeps this file's compiled model in: one per file content
    (its sha256), so a file re-exported in place never meets an old blob. None when
    the cache root cannot be written: the model then compiles every time."""
    try:
        return cache_dir("openvino", sha256_file(path))
    except (CacheDirError, OSError):
        return None


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None):
        ov = import_openvino()
        path = Path(path)
        card, io = read_onnx_card(path)
        threads = threads or usable_cores()
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads, "INFERENCE_NUM_THREADS": threads,
                  "INFERENCE_PRECISION_HINT": "f32"}
        cache = compile_cache(path)
        if cache is not None:
            config["CACHE_DIR"] = str(cache)
        try:
            compiled = core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"OpenVINO cannot load {path} ({first}): re-export it with dcgan-rt export") from None
        super().__init__(card, device="cpu", detail=f"CPU, {threads} streams of 1 thread",
                         precision=io["precision"],
                         output=output_kind(io))
        self.path = path
        self._inputs = [spec["name"] for spec in io["inputs"]]  # z, then label for a conditional model
        self._requests = [compiled.create_infer_request() for _ in range(threads)]
        self._queued = [compiled.create_infer_request() for _ in range(threads * QUEUED_PER_STREAM)]  # map_images
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

    def map_images(self, batches: Iterable[Batch | np.ndarray]) -> Iterator[np.ndarray]:
        """uint8 images per batch, in order: each batch whole on one stream, every stream busy."""
        if len(self._requests) < 2:
            yield from super().map_images(batches)
            return
        free = deque(self._requests + self._queued)

        def enqueue(value):
            batch = self._check_batch(value)
            request = free.popleft()
            request.start_async(dict(zip(self._inputs, (batch.z, batch.labels))), share_inputs=True)
            return request, batch  # the batch stays alive: the request reads its arrays in place

        def collect(slot) -> np.ndarray:
            request, _ = slot
            request.wait()
            out = request.get_output_tensor(0).data  # the request's buffer: copied out before it runs again
            images = np.array(out) if self.output == UINT8_NHWC else to_uint8(out)
            free.append(request)
            return images

        yield from pipelined(batches, enqueue, collect, lambda images: images, depth=len(free))

    def close(self) -> None:
        self._requests = []
        self._queued = []
        self._compiled = None
