"""The TensorRT backend: a prebuilt engine (+ sidecar), two batches in flight on one CUDA stream.

Core tier in placement; tensorrt and torch are imported when built (extra `[gpu]`
plus a CUDA build of PyTorch). The engine is checked against its sidecar by
dcgan_rt.engine_sidecar.load_engine (TensorRT version, GPU, plan sha256) before it
is deserialised. Device and pinned host buffers are torch tensors, so no
pycuda/cuda-python is needed. TensorRT 10/11 named-tensor API: set_input_shape,
set_tensor_address, execute_async_v3.

Pipelining: `map_images` enqueues batch k+1 (host->device copy, inference,
on-device uint8 conversion, device->host copy into pinned memory) before it waits
for batch k, so the GPU never idles while Python hands a finished batch to the
writers. One execution context serves both slots: work on one stream runs in
order, and TensorRT allows re-setting shapes and addresses once enqueue returns.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends import UINT8_NHWC, Backend
from dcgan_rt.errors import DcganRtError, MissingDependencyError, NumericalError

IN_FLIGHT = 2


class _Slot:
    """Buffers for one batch in flight: device in/out, pinned host in/out, a done event."""

    def __init__(self, torch, device, z_dim, out_shape, out_dtype, pixel_shape):
        self.torch, self.device = torch, device
        self.z_dim, self.out_shape, self.out_dtype, self.pixel_shape = z_dim, out_shape, out_dtype, pixel_shape
        self.capacity = 0
        self.n = 0
        self.event = torch.cuda.Event()
        self.nan = torch.zeros(1, dtype=torch.bool).pin_memory()

    def ensure(self, n: int) -> None:
        if n <= self.capacity:
            return
        torch = self.torch
        self.z_host = torch.empty((n, self.z_dim), dtype=torch.float32).pin_memory()
        self.z_dev = torch.empty((n, self.z_dim), dtype=torch.float32, device=self.device)
        self.out_dev = torch.empty((n, *self.out_shape), dtype=self.out_dtype, device=self.device)
        self.pixels_host = torch.empty((n, *self.pixel_shape), dtype=torch.uint8).pin_memory()
        self.capacity = n


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: str | Path, device: int = 0):
        from dcgan_rt.engine_sidecar import load_engine, read_sidecar

        read_sidecar(path)  # a missing or foreign sidecar is the first thing to report
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise MissingDependencyError("tensorrt", "running a TensorRT engine", extra="gpu") from None
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("torch", "the tensorrt backend (its CUDA buffers are torch tensors)") from None
        if not torch.cuda.is_available():
            raise DcganRtError("the tensorrt backend needs a CUDA GPU, and this PyTorch sees none")
        torch.cuda.set_device(device)  # TensorRT and torch then share the device's primary context
        loaded = load_engine(path, device)  # checks plan sha256, TensorRT version, GPU
        import tensorrt as trt

        engine, sidecar = loaded.engine, loaded.sidecar
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise DcganRtError(f"{path} has inputs {inputs} and outputs {outputs}; expected one of each: "
                               "rebuild with dcgan-rt export")
        self._in, self._out = inputs[0], outputs[0]
        _, _, max_shape = engine.get_tensor_profile_shape(self._in, 0)
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.UINT8: torch.uint8}
        out_dtype = dtypes.get(engine.get_tensor_dtype(self._out))
        if out_dtype is None or engine.get_tensor_dtype(self._in) != trt.DataType.FLOAT:
            raise DcganRtError(f"{path}: unexpected I/O types; rebuild with dcgan-rt export")
        card = sidecar.model_card
        c, h, w = card.model_config.image_shape
        self._float_out = out_dtype != torch.uint8
        out_shape = (c, h, w) if self._float_out else (h, w, c)
        super().__init__(card, device=f"cuda:{device}", precision=sidecar.precision, output=UINT8_NHWC,
                         max_batch=int(max_shape[0]),
                         detail=f"{sidecar.gpu_name}, TensorRT {trt.__version__}, {sidecar.precision}")
        self.path = Path(path)
        self._torch = torch
        self._loaded = loaded  # keeps runtime and logger alive as long as the engine
        self._context = engine.create_execution_context()
        self._stream = torch.cuda.Stream(device=device)
        dev = torch.device("cuda", device)
        self._slots = [_Slot(torch, dev, card.model_config.z_dim, out_shape, out_dtype, (h, w, c))
                       for _ in range(IN_FLIGHT)]
        self._next = 0

    def _enqueue(self, z: np.ndarray) -> _Slot:
        torch = self._torch
        z = self._check_z(z)
        n = z.shape[0]
        slot = self._slots[self._next]
        self._next = (self._next + 1) % IN_FLIGHT
        slot.event.synchronize()  # the slot's previous batch has left its buffers
        slot.ensure(n)
        slot.z_host[:n].copy_(torch.from_numpy(z))
        ctx = self._context
        with torch.cuda.stream(self._stream):
            slot.z_dev[:n].copy_(slot.z_host[:n], non_blocking=True)
            if not ctx.set_input_shape(self._in, (n, self.z_dim)):
                raise DcganRtError(f"engine refused batch {n} (its profile allows 1..{self.max_batch})")
            ctx.set_tensor_address(self._in, slot.z_dev.data_ptr())
            ctx.set_tensor_address(self._out, slot.out_dev.data_ptr())
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise DcganRtError("TensorRT failed to enqueue inference (see its log above)")
            out = slot.out_dev[:n]
            if self._float_out:
                # The dcgan_rt.pixels rule, in float32 on the device.
                x = out.float()
                slot.nan.copy_((~torch.isfinite(x).all()).reshape(1), non_blocking=True)  # NaN or inf
                out = torch.round((x + 1.0) * 127.5).clamp_(0.0, 255.0).to(torch.uint8)
                out = out.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C)
            slot.pixels_host[:n].copy_(out, non_blocking=True)
            slot.event.record(self._stream)
        slot.n = n
        return slot

    def _collect(self, slot: _Slot) -> np.ndarray:
        slot.event.synchronize()
        if self._float_out and bool(slot.nan[0]):
            raise NumericalError("the engine produced NaN or infinite values: rebuild it (dcgan-rt export) or check "
                                 "the model")
        return slot.pixels_host[: slot.n].numpy().copy()  # the pinned buffer is reused

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self._collect(self._enqueue(z))

    def images(self, z: np.ndarray) -> np.ndarray:
        return self(z)

    def map_images(self, zs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        in_flight: deque[_Slot] = deque()
        for z in zs:
            if len(in_flight) == IN_FLIGHT:
                yield self._collect(in_flight.popleft())
            in_flight.append(self._enqueue(z))
        while in_flight:
            yield self._collect(in_flight.popleft())

    def close(self) -> None:
        self._stream.synchronize()
        self._context = None
        self._slots = []
