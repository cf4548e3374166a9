"""Parity checks on every backend this machine has: what `dcgan-rt doctor MODEL` runs.

Export tier. For a run directory / .safetensors, every variant is exported to a
temporary folder and compared with the PyTorch fp32 generator on: each ONNX
Runtime execution provider present, the onnx.reference evaluator (an independent
implementation; a few images, it is slow), and TensorRT engines (fp32 and
fp16-uint8) where TensorRT and a GPU are present. For an .onnx file (no weights to
compare with) the reference is the onnx.reference evaluator on the file itself;
for an .engine, it is ONNX Runtime CPU on the ONNX file it was built from.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dcgan_rt.digest import sha256_file
from dcgan_rt.engine_sidecar import REBUILD, load_engine
from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_path import resolve_model
from dcgan_rt.onnx_card import output_kind, read_onnx_card
from dcgan_rt.export.engine import build_engine, engine_runner, engine_unavailable_reason
from dcgan_rt.export.parity import (
    ParityResult, backend_name, check_parity, fresh_latents, onnxruntime_runner, reference_evaluator_runner,
    reference_images,
)
from dcgan_rt.export.variants import FP16, FP16_UINT8, FP32, VARIANTS, export_variants

PARITY_COUNT = 64
PARITY_BATCHES = (1, 7, 56)
REFERENCE_EVALUATOR_COUNT = 2  # onnx.reference takes seconds per 64x64 image
ONNX_REFERENCE_COUNT = 4
PROVIDER_ORDER = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


@dataclass
class DoctorReport:
    reference: str  # what every result was compared with
    seed: int
    results: list[ParityResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "backend: why it did not run"

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def onnxruntime_providers() -> list[str]:
    """The execution providers this ONNX Runtime offers that doctor knows how to check."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    available = set(ort.get_available_providers())
    return [p for p in PROVIDER_ORDER if p in available]


def check_model(model: str | Path, log: Callable[[str], None] = lambda _msg: None) -> DoctorReport:
    resolved = resolve_model(model)
    check = {"safetensors": _check_weights, "onnx": _check_onnx, "engine": _check_engine}[resolved.kind]
    return check(resolved.path, log)


def _check_weights(path: Path, log: Callable[[str], None]) -> DoctorReport:
    from dcgan_rt.train.release import load_generator

    generator, card = load_generator(path)
    seed, z = fresh_latents(PARITY_COUNT, card.model_config.z_dim)
    report = DoctorReport("PyTorch fp32", seed)
    reference = reference_images(generator, z)
    providers = onnxruntime_providers()
    if not providers:
        report.skipped.append("onnxruntime: not installed (pip install 'dcgan-rt[cpu]')")
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-doctor-") as tmp:
        paths = export_variants(generator, card, list(VARIANTS.values()), tmp, log=log)
        for provider in providers:
            log(f"checking on {backend_name(provider)}")
            for v in VARIANTS.values():
                runner = onnxruntime_runner(paths[v.name], provider)
                report.results.append(check_parity(v.name, v.precision, v.output, backend_name(provider),
                                                   runner, z, reference, PARITY_BATCHES))
        log("checking on onnx.reference (slow: a few images)")
        n = REFERENCE_EVALUATOR_COUNT
        for v in (FP32, FP16):
            runner = reference_evaluator_runner(paths[v.name])
            report.results.append(check_parity(v.name, v.precision, v.output, "onnx.reference",
                                               runner, z[:n], reference[:n]))
        reason = engine_unavailable_reason()
        if reason:
            report.skipped.append(f"tensorrt: {reason}")
            return report
        for v in (FP32, FP16_UINT8):
            log(f"building a {v.name} TensorRT engine")
            engine_path = Path(tmp) / f"{v.name}.engine"
            build_engine(paths[v.name], engine_path, card, v.precision, v.output, max_batch=PARITY_COUNT)
            runner = engine_runner(load_engine(engine_path))
            report.results.append(check_parity(v.name, v.precision, v.output, "tensorrt", runner, z, reference,
                                               PARITY_BATCHES))
    return report


def _check_onnx(path: Path, log: Callable[[str], None]) -> DoctorReport:
    card, io = read_onnx_card(path)
    precision, output = io["precision"], output_kind(io)
    seed, z = fresh_latents(ONNX_REFERENCE_COUNT, card.model_config.z_dim)
    report = DoctorReport(f"onnx.reference evaluator on {path.name}", seed)
    log("running onnx.reference (slow: a few images)")
    reference = reference_evaluator_runner(path)(z)
    providers = onnxruntime_providers()
    if not providers:
        report.skipped.append("onnxruntime: not installed (pip install 'dcgan-rt[cpu]')")
    name = _variant_name(precision, output)
    for provider in providers:
        runner = onnxruntime_runner(path, provider)
        report.results.append(check_parity(name, precision, output, backend_name(provider), runner, z, reference,
                                           (1, len(z) - 1)))
    reason = engine_unavailable_reason()
    if reason:
        report.skipped.append(f"tensorrt: {reason}")
        return report
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-doctor-") as tmp:
        log("building a TensorRT engine")
        engine_path = Path(tmp) / "doctor.engine"
        build_engine(path, engine_path, card, precision, output, max_batch=PARITY_COUNT)
        runner = engine_runner(load_engine(engine_path))
        report.results.append(check_parity(name, precision, output, "tensorrt", runner, z, reference, (1, len(z) - 1)))
    return report


def _check_engine(path: Path, log: Callable[[str], None]) -> DoctorReport:
    loaded = load_engine(path)  # checks the sidecar, this TensorRT and this GPU first
    sidecar = loaded.sidecar
    source = path.parent / sidecar.onnx_file
    if not source.is_file():
        raise ArtifactError(f"doctor compares {path.name} with {sidecar.onnx_file}, the ONNX it was built from; "
                            f"put it beside the engine or {REBUILD}")
    if sha256_file(source) != sidecar.onnx_sha256:
        raise ArtifactError(f"{path.name} was built from a different {sidecar.onnx_file} (sha256 differs): {REBUILD}")
    seed, z = fresh_latents(PARITY_COUNT, sidecar.model_card.model_config.z_dim)
    report = DoctorReport(f"ONNX Runtime CPU on {sidecar.onnx_file}", seed)
    reference = onnxruntime_runner(source)(z)
    output = output_kind(sidecar.io)
    report.results.append(check_parity(_variant_name(sidecar.precision, output), sidecar.precision, output,
                                       "tensorrt", engine_runner(loaded),
                                       z, reference, PARITY_BATCHES))
    return report


def _variant_name(precision: str, output: str) -> str:
    return next(v.name for v in VARIANTS.values() if (v.precision, v.output) == (precision, output))
