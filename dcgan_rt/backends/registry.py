"""The one table of inference backends: what file each runs, the extra that installs it,
how it is built, whether it can run here, and which one `auto` takes.

Core tier: standard library at import; a backend's runtime is imported when it is
built. `select_backend` (dcgan_rt.backends), `dcgan-rt bench` (dcgan_rt.bench) and
`dcgan-rt doctor` (dcgan_rt.environment's "backends" section) all read this table, so
a backend added here is chosen, timed and diagnosed the same way everywhere.

Rows: the four `--backend` choices of generate (tensorrt, onnxruntime, openvino,
torch) and two ONNX Runtime rows pinned to one GPU provider, which bench and doctor
time and check on their own (`generate --backend onnxruntime` takes the best
provider present).

`auto` on the CPU (`cpu_choice`, `CPU_PREFERENCE`): ONNX Runtime for a file that
computes in fp32, OpenVINO for int8, each falling back to the other where it is not
installed. Measured on the default 64x64 RGB generator (docs/performance.md, "What auto
picks"): with its phase interleaves as Concats (dcgan_rt.backends.ort_graph) ONNX
Runtime runs the sub-pixel graph model-only as fast as OpenVINO (a tie within noise,
interleaved runs of benchmarks/bench_auto.py) and `generate --format npy` as fast or a
little faster end to end (median 1.05x), from the smaller install; OpenVINO runs the int8 file at 1.5-1.6x ONNX Runtime
(which runs it with its activations as uint8, ort_graph again). fp16 files stay on ONNX Runtime:
fp16 is a GPU precision, emulated on these CPUs. auto picks among backends for the file
given; it never swaps the file or its precision.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class BuildOptions:
    """How select_backend, bench and doctor ask for a backend (the same options for all)."""

    threads: int | None = None  # CPU threads (None: every usable core)
    gpu: int | None = None  # CUDA device (None: 0)
    providers: str = "auto"  # ONNX Runtime provider choice
    uint8: bool = True  # torch: return pixels (False: floats)
    precision: str | None = None  # torch on CUDA: "fp16" opts into half precision


@dataclass(frozen=True)
class BackendSpec:
    name: str
    artifact: str  # the file kind it runs: "onnx", "engine" or "safetensors"
    extra: str  # pip install 'dcgan-rt[extra]' brings its runtime
    device: str  # "cpu", "gpu", or "cpu/gpu" (torch: CUDA where it sees one)
    selectable: bool  # a `--backend` choice of generate / sample / evaluate
    build: Callable[[Path, BuildOptions], object] = field(repr=False)
    unavailable: Callable[[], str | None] = field(repr=False)  # why it cannot run here, or None


def distribution(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def no_gpu_reason() -> str | None:
    """Why the NVIDIA driver reports no CUDA GPU here (no torch needed), or None when it does."""
    from dcgan_rt.gpu import find_gpu

    gpu, reason = find_gpu(0)
    return None if gpu is not None else (reason or "no CUDA GPU on this machine")


def cuda_driver() -> bool:
    return no_gpu_reason() is None


def ort_providers() -> list[str]:
    """ONNX Runtime's available providers ([] when it is absent or does not load)."""
    if not has_module("onnxruntime"):
        return []
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:  # a broken onnxruntime is reported by doctor's environment section
        return []


def _ort_unavailable(provider: str | None) -> Callable[[], str | None]:
    def why() -> str | None:
        if not has_module("onnxruntime"):
            return "onnxruntime is not installed (pip install 'dcgan-rt[cpu]', or [gpu])"
        if provider is None:
            return None
        if provider not in ort_providers():
            return f"this onnxruntime has no {provider} (pip install 'dcgan-rt[gpu]' on a machine with a GPU)"
        return no_gpu_reason()

    return why


def _openvino_unavailable() -> str | None:
    return None if has_module("openvino") else "not installed (pip install 'dcgan-rt[openvino]')"


def _tensorrt_unavailable() -> str | None:
    if not has_module("tensorrt"):
        return "not installed (pip install 'dcgan-rt[gpu]')"
    if not has_module("cuda"):
        return "cuda-python is not installed (pip install 'dcgan-rt[gpu]')"
    return no_gpu_reason()


def _torch_unavailable() -> str | None:
    from dcgan_rt.extras import missing_train_module

    missing = missing_train_module()
    if missing is None:
        return None
    return f"{'' if missing == 'torch' else missing + ' is '}not installed (pip install 'dcgan-rt[train]')"


def _build_ort(providers: str | None) -> Callable[[Path, BuildOptions], object]:
    def build(path: Path, options: BuildOptions):
        from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, providers=providers or options.providers, threads=options.threads,
                                  device_id=options.gpu or 0)

    return build


def _build_openvino(path: Path, options: BuildOptions):
    from dcgan_rt.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(path, threads=options.threads)


def _build_tensorrt(path: Path, options: BuildOptions):
    from dcgan_rt.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, device=options.gpu or 0)


def _build_torch(path: Path, options: BuildOptions):
    from dcgan_rt.backends.torch import build_torch_backend

    return build_torch_backend(path, gpu=options.gpu, threads=options.threads, uint8=options.uint8,
                               precision=options.precision)


BACKENDS: dict[str, BackendSpec] = {spec.name: spec for spec in (
    BackendSpec("tensorrt", "engine", "gpu", "gpu", True, _build_tensorrt, _tensorrt_unavailable),
    BackendSpec("onnxruntime", "onnx", "cpu", "cpu", True, _build_ort(None), _ort_unavailable(None)),
    BackendSpec("openvino", "onnx", "openvino", "cpu", True, _build_openvino, _openvino_unavailable),
    BackendSpec("torch", "safetensors", "train", "cpu/gpu", True, _build_torch, _torch_unavailable),
    BackendSpec("onnxruntime-cuda", "onnx", "gpu", "gpu", False, _build_ort("cuda"),
                _ort_unavailable("CUDAExecutionProvider")),
    BackendSpec("onnxruntime-tensorrt", "onnx", "gpu", "gpu", False, _build_ort("tensorrt"),
                _ort_unavailable("TensorrtExecutionProvider")),
)}
SELECTABLE = tuple(name for name, spec in BACKENDS.items() if spec.selectable)


def backends_for(kind: str) -> list[BackendSpec]:
    """Every backend that runs files of this kind, in table order."""
    return [spec for spec in BACKENDS.values() if spec.artifact == kind]


def ort_gpu_usable() -> bool:
    """ONNX Runtime would run on a GPU here (a GPU provider and a CUDA GPU)."""
    # the driver check first: it is cheap, and without a GPU onnxruntime need not be imported
    return cuda_driver() and any(p in ort_providers() for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider"))


# The CPU runtimes auto takes for a file of each precision, fastest first (measured:
# docs/performance.md, "What auto picks"); a precision not listed runs on ONNX Runtime.
CPU_PREFERENCE = {"fp32": ("onnxruntime", "openvino"), "int8": ("openvino", "onnxruntime")}
_LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def cpu_choice(precision: str) -> tuple[str, str]:
    """(backend, why) for an .onnx file that computes in `precision` when it runs on the CPU."""
    order = CPU_PREFERENCE.get(precision)
    if order is None:
        return "onnxruntime", f"ONNX Runtime runs {precision} files on the CPU"
    best = order[0]
    name = next((n for n in order if BACKENDS[n].unavailable() is None), best)  # none: best says what to install
    if name == best:
        return name, f"{_LABELS[name]} is the fastest CPU runtime measured for {precision} files (docs/performance.md)"
    return name, (f"{_LABELS[name]} on the CPU (pip install 'dcgan-rt[{BACKENDS[best].extra}]' runs "
                  f"{precision} files faster)")


def status() -> dict[str, str]:
    """{backend: "available ..." or "unavailable: why"}: doctor's view of the table."""
    report = {}
    for spec in BACKENDS.values():
        why = spec.unavailable()
        report[spec.name] = (f"available (runs .{_suffix(spec.artifact)}, [{spec.extra}])" if why is None
                             else f"unavailable: {why}")
    return report


def _suffix(kind: str) -> str:
    return {"onnx": "onnx", "engine": "engine", "safetensors": "safetensors / run directories"}[kind]
