"""Inference backends behind one small interface, and the choice between them.

Core tier: this module imports numpy only; each backend module imports its runtime
(torch, onnxruntime, tensorrt) when it is built, and a missing one raises
MissingDependencyError naming what to install.

A backend is called with a dcgan_rt.batch.Batch (latents z, float32 (N, z_dim), and,
for a conditional model, its labels; a bare z array stands for an unlabelled batch)
and returns the model's output: float (N, C, H, W) in [-1, 1], or uint8 (N, H, W, C)
when postprocessing ran on the device or in the graph (`output` says which).
`images(batch)` always returns uint8 (N, H, W, C) by the rule in dcgan_rt.images.
The labels go to the model's `label` input, as the model card's `inputs` list it.

`select_backend(model, "auto")` picks, in DESIGN §4 order, the fastest backend that
can run this MODEL here: TensorRT engine > ONNX Runtime (TensorRT EP / CUDA EP) >
the fastest CPU runtime installed for the file's precision (ONNX Runtime for fp32,
OpenVINO for int8 where present) > PyTorch, and records why in `backend.reason`. One
exception: for a run directory on a machine with a CUDA GPU that PyTorch sees, but
neither TensorRT nor onnxruntime-gpu, PyTorch on the GPU beats a CPU runtime by
orders of magnitude, so `auto` picks it. The backends themselves (file kind, extra,
builder, availability) are one table, dcgan_rt.backends.registry, which `bench` and
`doctor` read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends.registry import BACKENDS, SELECTABLE, BuildOptions
from dcgan_rt.batch import Batch, as_batch
from dcgan_rt.digest import file_memo
from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.images import to_uint8
from dcgan_rt.model_card import LABEL_INPUT, ModelCard
from dcgan_rt.model_path import ModelPath, resolve_model
from dcgan_rt.onnx_card import FLOAT_NCHW, UINT8_NHWC

BACKEND_NAMES = ("auto", *SELECTABLE)


class Backend:
    """Runs a generator: `backend(batch) -> output`; `backend.images(batch) -> uint8 NHWC`."""

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
        self.artifact: ModelPath | None = None  # the file it runs (set by select_backend)

    @property
    def z_dim(self) -> int:
        return self.card.model_config.z_dim

    @property
    def label_spec(self) -> dict | None:
        """The card's `label` input ({"name", "dtype", "shape"}), None for an unconditional model."""
        return next((spec for spec in self.card.inputs if spec["name"] == LABEL_INPUT), None)

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def images(self, batch: Batch | np.ndarray) -> np.ndarray:
        out = self(batch)
        return out if self.output == UINT8_NHWC else to_uint8(out)

    def map_images(self, batches: Iterable[Batch | np.ndarray]) -> Iterator[np.ndarray]:
        """uint8 images for each batch, in order. Backends that can keep several
        batches in flight (TensorRT) override this."""
        for batch in batches:
            yield self.images(batch)

    def describe(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_batch(self, value: Batch | np.ndarray) -> Batch:
        """The batch with z float32 and labels in the dtype the model's label input takes,
        both contiguous; a wrong shape, or labels given to (or missing from) a model, refused."""
        batch = as_batch(value)
        z = np.ascontiguousarray(batch.z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim or z.shape[0] < 1:
            raise UsageError(f"latents must have shape (N >= 1, {self.z_dim}), got {z.shape}")
        if self.max_batch is not None and z.shape[0] > self.max_batch:
            raise UsageError(
                f"batch of {z.shape[0]} exceeds this model's maximum batch {self.max_batch}; "
                f"use --batch-size {self.max_batch} or less"
            )
        return Batch(batch.indices, z, self._check_labels(batch.labels, len(z)))

    def _check_labels(self, labels: np.ndarray | None, n: int) -> np.ndarray | None:
        spec = self.label_spec
        if spec is None:
            if labels is not None:
                raise UsageError("this model is unconditional: it takes no labels")
            return None
        if labels is None:
            raise UsageError(f"this model is conditional: each image needs a label ({spec['dtype']} "
                             f"{spec['shape']})")
        labels = np.ascontiguousarray(labels, dtype=spec["dtype"])
        want = (n, *spec["shape"][1:])
        if labels.shape != want:
            raise UsageError(f"labels must have shape {want}, got {labels.shape}")
        classes = self.card.model_config.num_classes
        if classes and labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise UsageError(f"class labels must be in 0..{classes - 1}, got {labels.min()}..{labels.max()}")
        return labels


@file_memo()  # auto reads the file's precision, the backend its card and hash: each file parsed once
def select_backend(model: str | Path | ModelPath, name: str = "auto", *, gpu: int | None = None,
                   threads: int | None = None, precision: str | None = None, providers: str = "auto",
                   uint8: bool = True) -> Backend:
    """Build the named backend for MODEL ("auto": the fastest one available, DESIGN §4).

    With a run directory (or generator.safetensors) and "auto", the files
    `dcgan-rt export` wrote to its export/ folder are used when they were exported
    from these very weights (their recorded source sha256 matches): the engine where
    TensorRT and a GPU are present, else the fp32 ONNX (uint8 variant first), else
    PyTorch. An ONNX file that runs on the CPU goes to the fastest CPU runtime
    installed for its precision (registry.cpu_choice: ONNX Runtime for fp32, OpenVINO
    for int8 where present).
    `backend.artifact` is the file that actually runs.

    gpu: which CUDA device GPU backends use (None: device 0; a torchrun rank passes
    LOCAL_RANK); threads: CPU threads for CPU backends (None: every core this process
    may use); precision: "fp16" opts the torch backend on CUDA into half precision
    (other backends run the precision their file was exported in); providers: the ONNX
    Runtime provider (doctor pins each one); uint8: torch returns pixels (False: floats).
    """
    if name != "auto" and name not in SELECTABLE:
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    if precision not in (None, "fp32", "fp16"):
        raise UsageError(f"--precision must be fp32 or fp16, got {precision!r}")
    resolved = model if isinstance(model, ModelPath) else resolve_model(model)
    if name == "auto":
        name, artifact, reason = _auto_choice(resolved)
    else:
        _check_kind(resolved, name)
        artifact, reason = resolved, "asked for"
    if precision == "fp16" and name != "torch":
        raise UsageError(f"--precision fp16 is for the torch backend on a CUDA GPU; {name} runs the precision its "
                         "file was exported in (dcgan-rt export --fp16 makes fp16 files)")
    options = BuildOptions(threads=threads, gpu=gpu, providers=providers, uint8=uint8, precision=precision)
    try:
        backend: Backend = BACKENDS[name].build(artifact.path, options)
    except DcganRtError as exc:
        if not reason.startswith("auto") or name != "openvino" or BACKENDS["onnxruntime"].unavailable() is not None:
            raise  # without ONNX Runtime to fall back on, OpenVINO's own error is the one to read
        # auto's CPU choice is installed but does not start: ONNX Runtime runs every ONNX file.
        name, reason = "onnxruntime", f"{reason}; OpenVINO did not start ({exc}), so ONNX Runtime"
        backend = BACKENDS[name].build(artifact.path, options)
    if name == "onnxruntime":
        reason = f"{reason}; {backend.provider_reason}"
    backend.reason = reason
    backend.artifact = artifact
    return backend


_NEEDS = {
    "engine": "a TensorRT .engine file: build one with 'dcgan-rt export MODEL --engine'",
    "onnx": "an .onnx file: make one with 'dcgan-rt export MODEL'",
    "safetensors": "a run directory or generator.safetensors (PyTorch cannot read .onnx or .engine files)",
}


def _check_kind(resolved: ModelPath, name: str) -> None:
    kind = BACKENDS[name].artifact
    if resolved.kind != kind:
        raise UsageError(f"--backend {name} needs {_NEEDS[kind]}; {resolved.path} is {_article(resolved.kind)} file")


def _article(kind: str) -> str:
    return {"onnx": "an ONNX", "engine": "a TensorRT engine", "safetensors": "a safetensors"}[kind]


def _auto_choice(resolved: ModelPath) -> tuple[str, ModelPath, str]:
    if resolved.kind == "engine":
        return "tensorrt", resolved, "auto: MODEL is a TensorRT engine, the fastest backend"
    if resolved.kind == "onnx":
        return _onnx_choice(resolved, "auto: MODEL is ONNX")
    if _torch_cuda_is_fastest():
        return "torch", resolved, ("auto: a CUDA GPU, PyTorch with CUDA, and neither TensorRT nor onnxruntime-gpu: "
                                   "PyTorch on the GPU")
    exported, why_not = exported_artifact(resolved)
    if exported is not None:
        why = f"auto: {exported.path} was exported from these weights"
        if exported.kind == "engine":
            return "tensorrt", exported, why
        return _onnx_choice(exported, why)
    return "torch", resolved, f"auto: MODEL is generator.safetensors and {why_not}"


def _onnx_choice(onnx_file: ModelPath, why: str) -> tuple[str, ModelPath, str]:
    """ONNX Runtime where it has a GPU to run on; on the CPU the fastest runtime installed."""
    from dcgan_rt.backends.registry import cpu_choice, ort_gpu_usable

    if ort_gpu_usable():
        return "onnxruntime", onnx_file, why
    name, because = cpu_choice(_onnx_precision(onnx_file.path))
    return name, onnx_file, f"{why}; {because}"


def _onnx_precision(path: Path) -> str:
    """What the file computes in, from its contract (fp32 when it cannot be read: the
    backend that opens it next says what is wrong in its own words)."""
    from dcgan_rt.errors import ArtifactError
    from dcgan_rt.onnx_card import read_onnx_card

    try:
        return read_onnx_card(path)[1].get("precision", "fp32")
    except (ArtifactError, OSError):
        return "fp32"


def exported_artifact(weights: ModelPath) -> tuple[ModelPath | None, str]:
    """The best file in weights' export/ folder made from exactly these weights and
    runnable here (engine > uint8 ONNX > ONNX), or (None, why there is none)."""
    from dcgan_rt.digest import sha256_file

    folder = weights.path.parent / "export"
    if not folder.is_dir():
        return None, "it has no export/ folder ('dcgan-rt export' it to use ONNX Runtime or TensorRT)"
    sha = sha256_file(weights.path)
    engine = folder / "generator.engine"
    if engine.is_file() and BACKENDS["tensorrt"].unavailable() is None \
            and source_sha256(ModelPath("engine", engine)) == sha:
        return ModelPath("engine", engine), ""
    if BACKENDS["onnxruntime"].unavailable() is not None:
        return None, "onnxruntime is not installed (pip install 'dcgan-rt[cpu]')"
    stale = False
    for name in ("generator.uint8.onnx", "generator.onnx"):
        candidate = ModelPath("onnx", folder / name)
        if candidate.path.is_file():
            if source_sha256(candidate) == sha:
                return candidate, ""
            stale = True
    if stale:
        return None, f"{folder} was exported from other weights (re-run 'dcgan-rt export')"
    return None, f"{folder} holds no fp32 ONNX ('dcgan-rt export' it to use ONNX Runtime)"


def source_sha256(model: ModelPath) -> str | None:
    """sha256 of the weights a file was made from: the file itself for safetensors;
    the export provenance for ONNX (None when it has none); via its ONNX for an engine."""
    from dcgan_rt.digest import sha256_file
    from dcgan_rt.errors import ArtifactError

    try:
        if model.kind == "safetensors":
            return sha256_file(model.path)
        if model.kind == "engine":
            from dcgan_rt.engine_sidecar import read_sidecar

            sidecar = read_sidecar(model.path)
            onnx_path = model.path.parent / sidecar.onnx_file
            if not onnx_path.is_file() or sha256_file(onnx_path) != sidecar.onnx_sha256:
                return None
            model = ModelPath("onnx", onnx_path)
        from dcgan_rt.onnx_card import read_onnx

        return read_onnx(model.path).export.get("source_sha256")
    except (ArtifactError, OSError):
        return None


def _torch_cuda_is_fastest() -> bool:
    """A CUDA GPU that PyTorch can use, and no GPU runtime for ONNX or engines installed."""
    from dcgan_rt.backends.registry import cuda_driver, has_module, ort_gpu_usable

    if not cuda_driver() or has_module("tensorrt") or ort_gpu_usable():
        return False
    if BACKENDS["torch"].unavailable() is not None:
        return False
    import torch

    return torch.cuda.is_available()
