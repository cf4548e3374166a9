"""The TensorRT backend: a prebuilt engine (+ sidecar), two batches in flight on one CUDA stream.

Core tier in placement; tensorrt and cuda-python are imported when built (extra
`[gpu]`), torch is not needed: the runtime install generates from engines alone.
The engine is checked against its sidecar by dcgan_rt.engine_sidecar.load_engine
(TensorRT version, GPU model, plan sha256) before it is deserialised. Buffers are
cuda-python allocations (dcgan_rt.backends.cuda_memory), as in NVIDIA's samples.
TensorRT 10/11 named-tensor API: set_input_shape, set_tensor_address,
execute_async_v3.

Pipelining: `map_images` enqueues batch k+1 (host->device copy, inference,
device->host copy into pinned memory) before it waits for batch k, so the GPU
never idles while Python hands a finished batch to the writers. One execution
context serves both slots: work on one stream runs in order, and TensorRT allows
re-setting shapes and addresses once enqueue returns.

Output: a uint8 engine (the `--uint8` export: postprocessing in the graph) makes
its pixels on the device and only they cross back (4x less traffic); a float
engine's output is copied back as is and turned into pixels on the host by the
dcgan_rt.pixels rule, with the NaN/inf check there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends import FLOAT_NCHW, UINT8_NHWC, Backend
from dcgan_rt.backends.inflight import IN_FLIGHT, pipelined
from dcgan_rt.batch import Batch
from dcgan_rt.errors import DcganRtError
from dcgan_rt.extras import import_optional
from dcgan_rt.images import to_uint8



class _Slot:
    """Buffers for one batch in flight: device in/out, pinned host in/out, a done event.
    inputs: (per-image shape, dtype) of each engine input (z, and a conditional model's label)."""

    def __init__(self, memory, inputs: list[tuple], out_shape: tuple, out_dtype):
        self.memory = memory
        self.inputs, self.out_shape, self.out_dtype = inputs, out_shape, np.dtype(out_dtype)
        self.capacity = 0
        self.n = 0
        self.event = memory.Event()
        self._buffers: list = []

    def ensure(self, n: int) -> None:
        if n <= self.capacity:
            return
        self.free_buffers()
        m = self.memory
        in_bytes = [n * int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in self.inputs]
        out_bytes = n * int(np.prod(self.out_shape)) * self.out_dtype.itemsize
        self.in_host = [m.PinnedBuffer(b) for b in in_bytes]
        self.in_dev = [m.DeviceBuffer(b) for b in in_bytes]
        self.out_host, self.out_dev = m.PinnedBuffer(out_bytes), m.DeviceBuffer(out_bytes)
        self._buffers = [*self.in_host, *self.in_dev, self.out_host, self.out_dev]
        self.capacity = n

    def free_buffers(self) -> None:
        for buffer in self._buffers:
            buffer.free()
        self._buffers = []
        self.capacity = 0


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0):
        from dcgan_rt.engine_sidecar import load_engine, read_sidecar

        read_sidecar(path)  # a missing or foreign sidecar is the first thing to report
        trt = import_optional("tensorrt", "running a TensorRT engine", extra="gpu")
        from dcgan_rt.backends import cuda_memory

        cuda_memory.cudart()  # cuda-python missing: say so before the engine is read
        cuda_memory.set_device(device)  # TensorRT then runs in this device's primary context
        loaded = load_engine(path, device)  # checks plan sha256, TensorRT version, GPU
        engine, sidecar = loaded.engine, loaded.sidecar
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        card = sidecar.model_card
        specs = card.inputs  # z, then label for a conditional model
        if sorted(inputs) != sorted(s["name"] for s in specs) or len(outputs) != 1:
            raise DcganRtError(f"{path} has inputs {inputs} and outputs {outputs}; its card expects inputs "
                               f"{[s['name'] for s in specs]} and one output: rebuild with dcgan-rt export")
        self._ins, self._out = [s["name"] for s in specs], outputs[0]
        _, _, max_shape = engine.get_tensor_profile_shape(self._ins[0], 0)
        dtypes = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16, trt.DataType.UINT8: np.uint8,
                  trt.DataType.INT64: np.int64}
        out_dtype = dtypes.get(engine.get_tensor_dtype(self._out))
        if out_dtype is None or any(dtypes.get(engine.get_tensor_dtype(s["name"])) != np.dtype(s["dtype"])
                                    for s in specs):
            raise DcganRtError(f"{path}: unexpected I/O types; rebuild with dcgan-rt export")
        c, h, w = card.model_config.image_shape
        self._float_out = out_dtype != np.uint8
        out_shape = (c, h, w) if self._float_out else (h, w, c)
        super().__init__(card, device=f"cuda:{device}", precision=sidecar.precision,
                         output=FLOAT_NCHW if self._float_out else UINT8_NHWC, max_batch=int(max_shape[0]),
                         detail=f"{sidecar.gpu_name}, TensorRT {trt.__version__}, {sidecar.precision}")
        self.path = Path(path)
        self._memory = cuda_memory
        self._loaded = loaded  # keeps runtime and logger alive as long as the engine
        self._context = engine.create_execution_context()
        self._stream = cuda_memory.Stream()
        slot_inputs = [(tuple(s["shape"][1:]), np.dtype(s["dtype"])) for s in specs]
        self._slots = [_Slot(cuda_memory, slot_inputs, out_shape, out_dtype) for _ in range(IN_FLIGHT)]
        self._next = 0

    def _enqueue(self, batch: Batch | np.ndarray) -> _Slot:
        batch = self._check_batch(batch)
        n = len(batch)
        slot = self._slots[self._next]
        self._next = (self._next + 1) % IN_FLIGHT
        slot.event.synchronize()  # the slot's previous batch has left its buffers
        slot.ensure(n)
        ctx, stream = self._context, self._stream
        arrays = [a for a in (batch.z, batch.labels) if a is not None]  # in the order of self._ins
        for name, array, host, dev in zip(self._ins, arrays, slot.in_host, slot.in_dev, strict=True):
            host.view(array.dtype, array.shape)[...] = array
            stream.copy_to_device(dev.ptr, host.ptr, array.nbytes)
            if not ctx.set_input_shape(name, array.shape):
                raise DcganRtError(f"engine refused batch {n} (its profile allows 1..{self.max_batch})")
            ctx.set_tensor_address(name, dev.ptr)
        ctx.set_tensor_address(self._out, slot.out_dev.ptr)
        if not ctx.execute_async_v3(stream.address):
            raise DcganRtError("TensorRT failed to enqueue inference (see its log above)")
        out_bytes = n * int(np.prod(slot.out_shape)) * slot.out_dtype.itemsize
        stream.copy_to_host(slot.out_host.ptr, slot.out_dev.ptr, out_bytes)
        slot.event.record(stream)
        slot.n = n
        return slot

    def _collect(self, slot: _Slot) -> np.ndarray:
        slot.event.synchronize()
        out = slot.out_host.view(slot.out_dtype, (slot.n, *slot.out_shape)).copy()  # the pinned buffer is reused
        return out.astype(np.float32) if self._float_out else out

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        return self._collect(self._enqueue(batch))

    def _pixels(self, out: np.ndarray) -> np.ndarray:
        return to_uint8(out) if self._float_out else out  # to_uint8 refuses NaN and inf

    def map_images(self, batches: Iterable[Batch | np.ndarray]) -> Iterator[np.ndarray]:
        return pipelined(batches, self._enqueue, self._collect, self._pixels)

    def close(self) -> None:
        if self._slots:
            self._stream.synchronize()
        for slot in self._slots:
            slot.free_buffers()
            slot.event.destroy()
        self._slots = []
        self._context = None
        self._stream.destroy()
