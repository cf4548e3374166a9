"""Which CUDA GPU this machine has, asked of the NVIDIA driver itself (no torch).

Core tier (standard library: ctypes). TensorRT engines are tied to a GPU's compute
capability; the engine loader and `dcgan-rt doctor` need to know it on installs
without PyTorch, so this reads it from the driver API (libcuda), which every
machine with an NVIDIA driver has. CUDA_VISIBLE_DEVICES is honoured by the driver.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

_COMPUTE_CAPABILITY_MAJOR = 75  # CUdevice_attribute values from cuda.h
_COMPUTE_CAPABILITY_MINOR = 76


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "major.minor", e.g. "9.0"
    total_memory: int  # bytes


def _libcuda():
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib")
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def find_gpu(index: int = 0) -> tuple[GpuInfo | None, str | None]:
    """(the CUDA device `index`, None), or (None, why there is no usable one)."""
    lib = _libcuda()
    if lib is None:
        return None, "no NVIDIA driver (libcuda) on this machine"
    if lib.cuInit(0) != 0:
        return None, "the NVIDIA driver found no usable CUDA device"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= index:
        return None, f"no CUDA device {index} (the driver sees {count.value})"
    dev = ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(dev), index) != 0:
        return None, f"the NVIDIA driver could not open CUDA device {index}"
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, dev)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    lib.cuDeviceGetAttribute(ctypes.byref(major), _COMPUTE_CAPABILITY_MAJOR, dev)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _COMPUTE_CAPABILITY_MINOR, dev)
    memory = ctypes.c_size_t(0)
    total_mem = getattr(lib, "cuDeviceTotalMem_v2", None) or lib.cuDeviceTotalMem
    total_mem(ctypes.byref(memory), dev)
    info = GpuInfo(index, name.value.decode(errors="replace"), f"{major.value}.{minor.value}", memory.value)
    return info, None
