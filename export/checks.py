"""Parity on every backend this machine has, built as generate builds it: what `dcgan-rt doctor MODEL` runs.

Export tier. Every backend is made by dcgan_rt.backends.select_backend, the one
construction path `generate --backend X` uses (same provider options, same
buffers, same device code), run on the same latents, and compared with the
reference within DESIGN §5's bounds (dcgan_rt.export.parity.BOUNDS):

- run directory / .safetensors: reference PyTorch fp32 on the CPU. Rows: the torch
  backend (on a CUDA GPU: fp32, and fp16 as `--precision fp16` runs it); every
  exported variant on each ONNX Runtime provider; OpenVINO; onnx.reference (an
  independent implementation, a few images); TensorRT engines (fp32, fp16-uint8, int8).
- .onnx: reference ONNX Runtime CPU on the file (onnx.reference where onnxruntime
  is absent); rows: the other providers, OpenVINO, onnx.reference, an engine.
- .engine: reference ONNX Runtime CPU on the ONNX it was built from.

A row that cannot run is a failure row, and every other row still runs. "Not
checked" is kept for what is absent (not installed) or has no GPU to run on;
an installed component that fails to load or start is a failure.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dcgan_rt.backends import select_backend
from dcgan_rt.backends.registry import BACKENDS, backends_for
from dcgan_rt.digest import sha256_file
from dcgan_rt.engine_sidecar import REBUILD, read_sidecar
from dcgan_rt.errors import ArtifactError, DcganRtError
from dcgan_rt.model_path import resolve_model
from dcgan_rt.onnx_card import output_kind, read_onnx_card
from dcgan_rt.export.parity import ParityResult, check_parity, fresh_inputs, reference_evaluator_runner

PARITY_COUNT = 64
PARITY_BATCHES = (1, 7, 56)
REFERENCE_EVALUATOR_COUNT = 2  # onnx.reference takes seconds per 64x64 image


@dataclass(frozen=True)
class Failure:
    """A row that could not run: the component is installed but did not load or start."""

    variant: str
    backend: str
    message: str


@dataclass
class DoctorReport:
    reference: str  # what every result was compared with
    seed: int
    results: list[ParityResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "backend: why it did not run"

    @property
    def passed(self) -> bool:
        return not self.failures and all(r.passed for r in self.results)

    def problems(self) -> list[str]:
        """One line per failure: rows that did not run, then rows outside their bound."""
        lines = [f"{f.variant} on {f.backend}: {f.message}" for f in self.failures]
        for r in self.results:
            if not r.passed:
                lines.append(f"{r.variant} on {r.backend}: {r.describe()} ({r.bound.describe()})")
        return lines


class _Rows:
    """Runs rows against one reference and records each outcome: result, failure or not checked."""

    def __init__(self, report: DoctorReport, z, reference, log: Callable[[str], None]):
        self.report, self.z, self.reference, self.log = report, z, reference, log

    def backend(self, variant: str, label: str, model: Path, name: str, count: int | None = None, **options) -> None:
        self.log(f"checking {variant} on {label}")
        try:
            with select_backend(model, name, **options) as backend:
                n = count or len(self.z)
                self.report.results.append(check_parity(
                    variant, backend.precision, backend.output, label, backend.__call__, self.z[:n],
                    self.reference[:n], PARITY_BATCHES if n == len(self.z) else None))
        except Exception as exc:  # noqa: BLE001 - rows run only for components present: any failure is one
            self.fail(variant, label, exc)

    def runner(self, variant: str, precision: str, output: str, label: str, make_runner, count: int) -> None:
        self.log(f"checking {variant} on {label}")
        try:
            self.report.results.append(check_parity(variant, precision, output, label, make_runner(),
                                                    self.z[:count], self.reference[:count]))
        except Exception as exc:  # noqa: BLE001
            self.fail(variant, label, exc)

    def fail(self, variant: str, label: str, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.report.failures.append(Failure(variant, label, text if isinstance(exc, DcganRtError)
                                            else f"{type(exc).__name__}: {text}"))


def check_model(model: str | Path, log: Callable[[str], None] = lambda _msg: None) -> DoctorReport:
    resolved = resolve_model(model)
    check = {"safetensors": _check_weights, "onnx": _check_onnx, "engine": _check_engine}[resolved.kind]
    return check(resolved.path, log)


def _onnx_rows(rows: _Rows, path: Path, variant: str, *, with_cpu: bool, with_engine: bool, tmp: Path) -> None:
    """A row per backend of the registry that runs ONNX files (the CPU provider only when asked)."""
    for spec in backends_for("onnx"):
        label = "onnxruntime-cpu" if spec.name == "onnxruntime" else spec.name
        if spec.name == "onnxruntime" and not with_cpu:
            continue
        why = spec.unavailable()
        if why is not None:
            rows.report.skipped.append(f"{label}: {why}")
        elif spec.name.startswith("onnxruntime"):
            rows.backend(variant, label, path, "onnxruntime", providers=label.split("-", 1)[1])
        else:
            rows.backend(variant, label, path, spec.name)
    if with_engine:
        _engine_row(rows, path, variant, tmp)


def _engine_row(rows: _Rows, onnx_path: Path, variant: str, tmp: Path) -> None:
    why = BACKENDS["tensorrt"].unavailable()
    if why is not None:
        rows.report.skipped.append(f"tensorrt: {why}")
        return
    engine_path = tmp / f"{variant}.engine"
    try:
        from dcgan_rt.export.engine import build_engine

        card, io = read_onnx_card(onnx_path)
        rows.log(f"building a {variant} TensorRT engine")
        build_engine(onnx_path, engine_path, card, io["precision"], output_kind(io), max_batch=PARITY_COUNT)
    except Exception as exc:  # noqa: BLE001 - an installed TensorRT that cannot build is a failure
        rows.fail(variant, "tensorrt", exc)
        return
    rows.backend(variant, "tensorrt", engine_path, "tensorrt")


def _check_weights(path: Path, log: Callable[[str], None]) -> DoctorReport:
    from dcgan_rt.export.parity import reference_images
    from dcgan_rt.export.variants import FP16, FP16_UINT8, FP32, INT8, VARIANTS, export_variants
    from dcgan_rt.train.release import load_generator

    generator, card = load_generator(path)
    seed, z = fresh_inputs(PARITY_COUNT, card)  # a Batch: latents, and labels for a conditional model
    report = DoctorReport("PyTorch fp32", seed)
    rows = _Rows(report, z, reference_images(generator, z), log)
    import torch

    rows.backend("fp32", "torch" if not torch.cuda.is_available() else "torch-cuda", path, "torch", uint8=False)
    if torch.cuda.is_available():
        rows.backend("fp16", "torch-cuda", path, "torch", uint8=False, precision="fp16")
    else:
        report.skipped.append("torch-cuda: this PyTorch sees no CUDA GPU")
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-doctor-") as tmp:
        paths = export_variants(generator, card, list(VARIANTS.values()), tmp, log=log)
        for v in VARIANTS.values():
            _onnx_rows(rows, Path(paths[v.name]), v.name, with_cpu=True,
                       with_engine=v in (FP32, FP16_UINT8, INT8), tmp=Path(tmp))
        for v in (FP32, FP16):
            rows.runner(v.name, v.precision, v.output, "onnx.reference",
                        lambda v=v: reference_evaluator_runner(paths[v.name]), REFERENCE_EVALUATOR_COUNT)
    _dedupe(report)
    return report


def _check_onnx(path: Path, log: Callable[[str], None]) -> DoctorReport:
    card, io = read_onnx_card(path)
    precision, output = io["precision"], output_kind(io)
    variant = _variant_name(precision, output)
    with_ort = BACKENDS["onnxruntime"].unavailable() is None
    seed, z = fresh_inputs(PARITY_COUNT if with_ort else REFERENCE_EVALUATOR_COUNT * 2, card)
    if with_ort:
        report = DoctorReport(f"ONNX Runtime CPU on {path.name}", seed)
        with select_backend(path, "onnxruntime", providers="cpu") as cpu:
            reference = cpu(z)
    else:
        report = DoctorReport(f"onnx.reference evaluator on {path.name}", seed)
        log("running onnx.reference (slow: a few images)")
        reference = reference_evaluator_runner(path)(z)
    rows = _Rows(report, z, reference, log)
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-doctor-") as tmp:
        _onnx_rows(rows, path, variant, with_cpu=False, with_engine=True, tmp=Path(tmp))
    if with_ort:
        rows.runner(variant, precision, output, "onnx.reference", lambda: reference_evaluator_runner(path),
                    REFERENCE_EVALUATOR_COUNT)
    _dedupe(report)
    return report


def _check_engine(path: Path, log: Callable[[str], None]) -> DoctorReport:
    sidecar = read_sidecar(path)  # a missing or foreign sidecar is the first thing to report
    source = path.parent / sidecar.onnx_file
    if not source.is_file():
        raise ArtifactError(f"doctor compares {path.name} with {sidecar.onnx_file}, the ONNX it was built from; "
                            f"put it beside the engine or {REBUILD}")
    if sha256_file(source) != sidecar.onnx_sha256:
        raise ArtifactError(f"{path.name} was built from a different {sidecar.onnx_file} (sha256 differs): {REBUILD}")
    seed, z = fresh_inputs(PARITY_COUNT, sidecar.model_card)
    report = DoctorReport(f"ONNX Runtime CPU on {sidecar.onnx_file}", seed)
    with select_backend(source, "onnxruntime", providers="cpu") as cpu:
        reference = cpu(z)
    rows = _Rows(report, z, reference, log)
    why = BACKENDS["tensorrt"].unavailable()
    if why is not None:
        report.skipped.append(f"tensorrt: {why}")
    else:
        rows.backend(_variant_name(sidecar.precision, output_kind(sidecar.io)), "tensorrt", path, "tensorrt")
    return report


def _dedupe(report: DoctorReport) -> None:
    """Each 'not checked' reason once (every variant meets the same absent provider)."""
    report.skipped = list(dict.fromkeys(report.skipped))


def _variant_name(precision: str, output: str) -> str:
    from dcgan_rt.variant_table import variant_for

    return variant_for(precision, output).name
