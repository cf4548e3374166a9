"""CUDA device and pinned host buffers, streams and events through cuda-python, not torch.

Core tier in placement; `cuda.bindings.runtime` (cuda-python >= 12.6; older
releases are `cuda.cudart`) is imported when the first object is made. This is
what NVIDIA's own TensorRT samples use (samples/python/common_runtime.py): the
runtime install (`[gpu]`) runs engines without PyTorch. Every call returns
(error, *results); `_check` turns an error into a DcganRtError naming the call.
"""

from __future__ import annotations

import ctypes

import numpy as np

from dcgan_rt.errors import DcganRtError, MissingDependencyError

_cudart = None


def cudart():
    """The cuda-python runtime module, imported once."""
    global _cudart
    if _cudart is None:
        try:
            from cuda.bindings import runtime
        except ImportError:
            try:
                from cuda import cudart as runtime  # cuda-python < 12.6
            except ImportError:
                raise MissingDependencyError("cuda-python", "the tensorrt backend's CUDA buffers", extra="gpu") from None
        _cudart = runtime
    return _cudart


def _check(result, what: str):
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(getattr(err, "value", err)) != 0:
        rt = cudart()
        name = rt.cudaGetErrorName(err)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        raise DcganRtError(f"CUDA call {what} failed ({name})")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def set_device(index: int) -> None:
    _check(cudart().cudaSetDevice(index), f"cudaSetDevice({index})")


class DeviceBuffer:
    """nbytes of device memory; `.ptr` is the address TensorRT binds."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.ptr = int(_check(cudart().cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self) -> None:
        if self.ptr:
            cudart().cudaFree(self.ptr)
            self.ptr = 0


class PinnedBuffer:
    """nbytes of page-locked host memory, seen as a numpy array (copies to and from the
    device run asynchronously only from pinned memory)."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.ptr = int(_check(cudart().cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))

    def view(self, dtype, shape: tuple) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) * dtype.itemsize
        if count > self.nbytes:
            raise ValueError(f"view of {count} bytes on a {self.nbytes}-byte buffer")
        raw = (ctypes.c_ubyte * count).from_address(self.ptr)
        return np.frombuffer(raw, dtype=np.uint8, count=count).view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            cudart().cudaFreeHost(self.ptr)
            self.ptr = 0


class Stream:
    def __init__(self):
        rt = cudart()
        self.handle = _check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def address(self) -> int:
        """The cudaStream_t as an integer, as TensorRT's execute_async_v3 takes it."""
        return int(self.handle)  # the handle's value; getPtr() would be the address of the Python-side copy

    def copy_to_device(self, device_ptr: int, host_ptr: int, nbytes: int) -> None:
        rt = cudart()
        _check(rt.cudaMemcpyAsync(device_ptr, host_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                  self.handle), "cudaMemcpyAsync (host to device)")

    def copy_to_host(self, host_ptr: int, device_ptr: int, nbytes: int) -> None:
        rt = cudart()
        _check(rt.cudaMemcpyAsync(host_ptr, device_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                  self.handle), "cudaMemcpyAsync (device to host)")

    def synchronize(self) -> None:
        _check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def destroy(self) -> None:
        if self.handle is not None:
            cudart().cudaStreamDestroy(self.handle)
            self.handle = None


class Event:
    """Marks a point in a stream; `synchronize` waits until the stream has passed it."""

    def __init__(self):
        rt = cudart()
        self.handle = _check(rt.cudaEventCreateWithFlags(rt.cudaEventDisableTiming), "cudaEventCreateWithFlags")
        self.recorded = False

    def record(self, stream: Stream) -> None:
        _check(cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")
        self.recorded = True

    def synchronize(self) -> None:
        if self.recorded:
            _check(cudart().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def destroy(self) -> None:
        if self.handle is not None:
            cudart().cudaEventDestroy(self.handle)
            self.handle = None
