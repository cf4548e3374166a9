"""Inference backends behind one small interface, and the choice between them.

Core tier: this module imports numpy only; each backend module imports its runtime
(torch, onnxruntime, tensorrt) when it is built, and a missing one raises
MissingDependencyError naming what to install.

A backend is called with latents z, float32 (N, z_dim), and returns the model's
output: float (N, C, H, W) in [-1, 1], or uint8 (N, H, W, C) when postprocessing
ran on the device or in the graph (`output` says which). `images(z)` always
returns uint8 (N, H, W, C) by the rule in dcgan_rt.images.

`select_backend(model, "auto")` picks, in DESIGN §4 order, the fastest backend that
can run this MODEL here: TensorRT engine > ONNX Runtime (TensorRT EP / CUDA EP) >
ONNX Runtime CPU > PyTorch, and records why in `backend.reason`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.errors import UsageError
from dcgan_rt.images import to_uint8
from dcgan_rt.model_card import ModelCard
from dcgan_rt.model_path import ModelPath, resolve_model

BACKEND_NAMES = ("auto", "tensorrt", "onnxruntime", "torch")
FLOAT_NCHW = "float32-nchw"
UINT8_NHWC = "uint8-nhwc"


class Backend:
    """Runs a generator: `backend(z) -> output`; `backend.images(z) -> uint8 NHWC`."""

    name = "backend"

    def __init__(self, card: ModelCard, *, device: str = "cpu", detail: str = "", precision: str = "fp32",
                 output: str = FLOAT_NCHW, max_batch: int | None = None):
        self.card = card
        self.device = device
        self.detail = detail  # e.g. "CPUExecutionProvider, 2 threads"
        self.precision = precision
        self.output = output
        self.max_batch = max_batch  # None: no limit from the model (memory still applies)
        self.reason = ""  # why select_backend chose it

    @property
    def z_dim(self) -> int:
        return self.card.model_config.z_dim

    def __call__(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def images(self, z: np.ndarray) -> np.ndarray:
        out = self(z)
        return out if self.output == UINT8_NHWC else to_uint8(out)

    def map_images(self, zs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """uint8 images for each batch of latents, in order. Backends that can keep
        several batches in flight (TensorRT) override this."""
        for z in zs:
            yield self.images(z)

    def describe(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim or z.shape[0] < 1:
            raise UsageError(f"latents must have shape (N >= 1, {self.z_dim}), got {z.shape}")
        if self.max_batch is not None and z.shape[0] > self.max_batch:
            raise UsageError(
                f"batch of {z.shape[0]} exceeds this model's maximum batch {self.max_batch}; "
                f"use --batch-size {self.max_batch} or less"
            )
        return z


def select_backend(model: str | Path | ModelPath, name: str = "auto", *, gpu: int = 0,
                   threads: int | None = None) -> Backend:
    """Build the named backend for MODEL ("auto": the fastest one available, DESIGN §4).

    gpu: which CUDA device GPU backends use (a torchrun rank passes LOCAL_RANK);
    threads: CPU threads for CPU backends (None: every core this process may use).
    """
    if name not in BACKEND_NAMES:
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    resolved = model if isinstance(model, ModelPath) else resolve_model(model)
    if name == "auto":
        name, reason = _auto_choice(resolved)
    else:
        reason = "asked for"
        _check_kind(resolved, name)
    if name == "tensorrt":
        from dcgan_rt.backends.tensorrt import TensorRTBackend

        backend: Backend = TensorRTBackend(resolved.path, device=gpu)
    elif name == "onnxruntime":
        from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(resolved.path, threads=threads, device_id=gpu)
        reason = f"{reason}; {backend.provider_reason}"
    else:
        from dcgan_rt.backends.torch import TorchBackend

        backend = TorchBackend(resolved.path, gpu=gpu, threads=threads)
    backend.reason = reason
    return backend


_NEEDS = {
    "tensorrt": ("engine", "a TensorRT .engine file: build one with 'dcgan-rt export MODEL --engine'"),
    "onnxruntime": ("onnx", "an .onnx file: make one with 'dcgan-rt export MODEL'"),
    "torch": ("safetensors", "a run directory or generator.safetensors (PyTorch cannot read "
                             ".onnx or .engine files)"),
}


def _check_kind(resolved: ModelPath, name: str) -> None:
    kind, what = _NEEDS[name]
    if resolved.kind != kind:
        raise UsageError(f"--backend {name} needs {what}; {resolved.path} is {_article(resolved.kind)} file")


def _article(kind: str) -> str:
    return {"onnx": "an ONNX", "engine": "a TensorRT engine", "safetensors": "a safetensors"}[kind]


def _auto_choice(resolved: ModelPath) -> tuple[str, str]:
    if resolved.kind == "engine":
        return "tensorrt", "auto: MODEL is a TensorRT engine, the fastest backend"
    if resolved.kind == "onnx":
        return "onnxruntime", "auto: MODEL is ONNX"
    return "torch", ("auto: MODEL is a PyTorch release (generator.safetensors), which only PyTorch reads; "
                     "'dcgan-rt export' it to use ONNX Runtime or TensorRT")
