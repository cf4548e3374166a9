"""The ONNX Runtime backend: any dcgan-rt ONNX file on the CPU, CUDA or TensorRT providers.

Core tier; onnxruntime is imported when the backend is built (extra `[cpu]`, or
`[gpu]` for onnxruntime-gpu). Providers, best first: TensorRT EP (engines cached
per ONNX sha256 under the dcgan-rt cache), CUDA EP with I/O binding (the output is
written on the device and copied back once; the uint8 variant makes that copy 4x
smaller), CPU EP. With "auto" the providers a session actually got are reported,
since ONNX Runtime silently falls back when, say, TensorRT's libraries are missing;
a provider asked for by name that does not start is an error (doctor relies on it).

Every provider option and CPU session setting comes from
dcgan_rt.backends.ort_options, which says why each was chosen. On the CPU provider the
session runs the forms of the file's graph it runs fastest (dcgan_rt.backends.ort_graph:
phase interleaves as Concats, int8 activations as uint8); the file is not changed.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends import UINT8_NHWC, Backend
from dcgan_rt.batch import Batch
from dcgan_rt.backends.ort_graph import cpu_session_model
from dcgan_rt.backends.registry import cuda_driver
from dcgan_rt.backends.ort_options import (
    CPU_EP as _CPU_EP, CUDA_EP as _CUDA_EP, TRT_EP as _TRT_EP, TRT_MAX_BATCH as _TRT_MAX_BATCH, BatchSplitter,
    cpu_session_options, provider_list,
)
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import ArtifactError, DcganRtError, UsageError
from dcgan_rt.extras import import_optional
from dcgan_rt.images import to_uint8
from dcgan_rt.onnx_card import card_from_metadata, output_kind
from dcgan_rt.safe_load import check_onnx_file

PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")


def import_onnxruntime():
    return import_optional("onnxruntime", "the onnxruntime backend", extra="cpu")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: str = "auto", threads: int | None = None,
                 spin: bool = False, device_id: int = 0, concat_interleave: bool = True):
        if providers not in PROVIDER_CHOICES:
            raise UsageError(f"unknown ONNX Runtime provider choice {providers!r}: "
                             f"one of {', '.join(PROVIDER_CHOICES)}")
        ort = import_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"ONNX model {path} not found")
        check_onnx_file(path)  # external data outside its folder is refused before ONNX Runtime reads it
        available = ort.get_available_providers()
        # The driver is asked only where it matters: "auto" with a GPU provider installed.
        gpu = providers != "auto" or not {_TRT_EP, _CUDA_EP} & set(available) or cuda_driver()
        wanted, self.provider_reason = provider_list(providers, available, device_id, path, gpu=gpu)
        self.provider_options = wanted  # what ONNX Runtime was asked for (doctor and tests compare it)
        on_cpu = _provider_name(wanted[0]) == _CPU_EP
        # On the CPU provider each core runs its own slice of the batch on one thread
        # (ort_options.BatchSplitter: measurably faster than intra-op threads here).
        workers = (threads or usable_cores()) if on_cpu else 1
        options = cpu_session_options(ort, 1 if workers > 1 else threads, spinning=spin)
        # The CPU provider runs ort_graph's forms of the file (same pixels or within a level, faster);
        # concat_interleave=False keeps the file's graph (benchmarks compare the two).
        model = cpu_session_model(path) if on_cpu and concat_interleave else None
        try:
            session = _session(ort, model, path, options, wanted)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not on_cpu:  # a GPU provider's libraries are as likely as the file
                raise ArtifactError(f"ONNX Runtime cannot load {path} with {_provider_name(wanted[0])} ({first}): "
                                    "check the CUDA/TensorRT libraries it needs, or re-export a damaged file "
                                    "with dcgan-rt export") from None
            raise ArtifactError(f"ONNX Runtime cannot load {path} ({first}): "
                                "re-export it with dcgan-rt export") from None
        card, io = card_from_metadata(session.get_modelmeta().custom_metadata_map, str(path))
        check_session_io(session, io, path)
        used = session.get_providers()
        main = used[0] if used else _CPU_EP
        if main != _provider_name(wanted[0]) and providers != "auto":
            raise DcganRtError(f"ONNX Runtime's {_provider_name(wanted[0])} did not start for {path.name} "
                               f"(the session fell back to {main}): check the CUDA/TensorRT libraries it needs")
        if main != _provider_name(wanted[0]):
            self.provider_reason += f"; {_provider_name(wanted[0])} failed to start, fell back to {main}"
        on_gpu = main in (_TRT_EP, _CUDA_EP)
        detail = main if not on_gpu else f"{main}, GPU {device_id}"
        if main == _CPU_EP:
            detail += f", {workers} single-threaded workers" if workers > 1 else ", 1 thread"
        super().__init__(
            card, device=f"cuda:{device_id}" if on_gpu else "cpu", detail=detail,
            precision=io["precision"], output=output_kind(io),
            max_batch=_TRT_MAX_BATCH if main == _TRT_EP else None,
        )
        self.path = path
        self.providers = used
        self._session = session
        self._inputs = [spec["name"] for spec in io["inputs"]]  # z, then label for a conditional model
        self._output = session.get_outputs()[0].name
        self._device_id = device_id
        self._binding = session.io_binding() if on_gpu else None
        self._split = BatchSplitter(self._run, workers if not on_gpu else 1)
        self._pool = None  # map_images' workers, made on first use

    def _feed(self, batch: Batch) -> dict[str, np.ndarray]:
        return dict(zip(self._inputs, (batch.z, batch.labels)))

    def _run(self, batch: Batch) -> np.ndarray:
        return self._session.run([self._output], self._feed(batch))[0]

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        if self._binding is None:
            return self._split(batch)
        # I/O binding: z is copied to the device once, the output is allocated there
        # by ONNX Runtime and copied back once, with no staging copies in between.
        binding = self._binding
        for name, value in self._feed(batch).items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(self._output, "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        out = binding.copy_outputs_to_cpu()[0]
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        return out

    def map_images(self, batches: Iterable[Batch | np.ndarray]) -> Iterator[np.ndarray]:
        """On the CPU with several workers: whole batches side by side, one per core, plus
        one queued, results in order. Unlike splitting each batch, no core waits for the
        other at the end of every batch, and the uint8 conversion runs on the workers."""
        workers = self._split.workers
        if self._binding is not None or workers < 2:
            yield from super().map_images(batches)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dcgan-rt-batch")
        in_flight: deque = deque()
        for batch in batches:
            in_flight.append(self._pool.submit(self._whole_batch, self._check_batch(batch)))
            if len(in_flight) > workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()

    def _whole_batch(self, batch: Batch) -> np.ndarray:
        out = self._run(batch)
        return out if self.output == UINT8_NHWC else to_uint8(out)

    def close(self) -> None:
        self._split.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._binding = None
        self._session = None


def _session(ort, model: bytes | None, path: Path, options, providers):
    """A session on the rewritten graph, or on the file itself when there is none or
    ONNX Runtime refuses it (then the file's own graph decides, and its errors name the file)."""
    if model is not None:
        try:
            return ort.InferenceSession(model, options, providers=providers)
        except Exception:  # noqa: BLE001 - any refusal of the rewrite: the file as written is what counts
            pass
    return ort.InferenceSession(str(path), options, providers=providers)


_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16",
              "tensor(int64)": "int64"}


def check_session_io(session, io: dict, path: Path) -> None:
    """The graph's real input and output must be the ones its metadata promises: a file whose
    metadata was edited, or copied onto another graph, is refused instead of writing wrong images."""
    for role, args, specs in (("inputs", session.get_inputs(), io["inputs"]),
                              ("output", session.get_outputs(), [io["output"]])):
        got = ", ".join(_describe(a.name, _ORT_TYPES.get(a.type, a.type), a.shape) for a in args)
        want = ", ".join(_describe(spec["name"], spec["dtype"], spec["shape"]) for spec in specs)
        if got != want:
            raise ArtifactError(f"{path}: the graph's {role} is {got}, its metadata promises {want}: "
                                "re-export it with dcgan-rt export")


def _describe(name: str, dtype: str, shape) -> str:
    """'images float32 [N, 1, 16, 16]' (any symbolic dimension shown as N)."""
    return f"{name} {dtype} [{', '.join(str(d) if isinstance(d, int) else 'N' for d in shape)}]"


def _provider_name(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else entry
