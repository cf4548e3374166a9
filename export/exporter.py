"""`dcgan-rt export` as a library call: variants -> parity -> engine -> files in place.

Export tier. Everything is first written to a hidden staging folder inside the
output directory; each artifact is checked against the PyTorch generator on fresh
random latents; only when every check passes are the files renamed into place
(same filesystem, so each rename is atomic). A failure leaves nothing behind
that could pass for a good export.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from dcgan_rt import __version__
from dcgan_rt.digest import sha256_file
from dcgan_rt.engine_sidecar import EngineSidecar, sidecar_path
from dcgan_rt.errors import DcganRtError, NumericalError, UsageError
from dcgan_rt.export.engine import build_engine, engine_runner
from dcgan_rt.export.preflight import DEFAULT_OPSET, plan_export
from dcgan_rt.export.parity import (
    ParityResult, backend_name, check_finite_reference, check_parity, fresh_inputs, onnxruntime_runner,
    raise_on_failure, reference_images,
)
from dcgan_rt.onnx_card import read_onnx_card
from dcgan_rt.export.variants import engine_variant, export_variants, select_variants

PARITY_COUNT = 64
PARITY_BATCHES = (1, 7, 56)  # uneven batch sizes exercise the dynamic batch axis
ENGINE_FILENAME = "generator.engine"


@dataclass
class ExportReport:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    results: list[ParityResult] = field(default_factory=list)
    seed: int = 0
    engine: EngineSidecar | None = None
    no_engine_reason: str | None = None  # set when an engine was wanted by default but cannot be built here


def export_model(model: str | Path, out: str | Path | None = None, options: Iterable[str] = (),
                 engine: bool | None = None, max_batch: int | None = None, opset: int = DEFAULT_OPSET,
                 log: Callable[[str], None] = lambda _msg: None) -> ExportReport:
    """Export MODEL's generator. `options`: names from dcgan_rt.variant_table.OPTIONS ("fp16",
    "uint8", "int8"), each adding its variants; `engine`: True forces, False skips, None
    builds where possible."""
    options = frozenset(options)
    plan = plan_export(model, engine, max_batch, opset, options)  # refuses bad input before anything is loaded

    from dcgan_rt.train.release import load_generator

    generator, card = load_generator(plan.source.path)
    out_dir = Path(out) if out is not None else plan.source.path.parent / "export"
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport(out_dir=out_dir, no_engine_reason=plan.no_engine_reason)
    stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".export-"))
    try:
        _export_into(stage, report, generator, card, plan.source.path, options,
                     plan.build_engine, plan.max_batch, opset, log)
        for name in _ordered(os.listdir(stage)):
            os.replace(stage / name, out_dir / name)
            report.files.append(out_dir / name)
    except BaseException as exc:
        if created:
            shutil.rmtree(stage, ignore_errors=True)
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: never remove what was there before
        if isinstance(exc, OSError):  # disk full, quota, file size limit
            raise DcganRtError(f"cannot write the export to {out_dir} ({exc.strerror or exc}); nothing was "
                               "written: free some space and run dcgan-rt export again") from exc
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def _export_into(stage: Path, report: ExportReport, generator, card, source: Path, options: frozenset[str],
                 build: bool, max_batch: int, opset: int, log: Callable[[str], None]) -> None:
    import torch

    provenance = {
        "source_file": source.name, "source_sha256": sha256_file(source),
        "torch_version": torch.__version__, "tool_version": __version__,
    }
    report.seed, z = fresh_inputs(PARITY_COUNT, card)  # a Batch: latents, and labels for a conditional model
    reference = reference_images(generator, z)
    check_finite_reference(reference, report.seed)  # a broken generator is refused before anything is exported
    variants = select_variants(options)
    export_variants(generator, card, variants, stage, opset, provenance, log)

    for v in variants:
        runner = onnxruntime_runner(stage / v.filename)
        report.results.append(check_parity(v.name, v.precision, v.output, backend_name("CPUExecutionProvider"),
                                           runner, z, reference, PARITY_BATCHES))
    _raise_if_failed(report)

    if build:
        v = engine_variant(options)
        log(f"building {ENGINE_FILENAME} from {v.filename} with TensorRT (max batch {max_batch})")
        engine_path = stage / ENGINE_FILENAME
        built_card, _ = read_onnx_card(stage / v.filename)  # an int8 file's card says int8 and how it was calibrated
        report.engine = build_engine(stage / v.filename, engine_path, built_card, v.precision, v.output, max_batch)
        runner = engine_runner(engine_path)
        report.results.append(check_parity(f"{v.name} engine", v.precision, v.output, "tensorrt",
                                           runner, z, reference, PARITY_BATCHES))
        _raise_if_failed(report)


def _raise_if_failed(report: ExportReport) -> None:
    try:
        raise_on_failure(report.results, report.seed)
    except NumericalError as exc:
        failure = NumericalError(f"{exc}; nothing was written")
        failure.results = list(report.results)  # so the CLI can still print the table
        failure.seed = report.seed
        raise failure from None


def _ordered(names: list[str]) -> list[str]:
    """ONNX files first, then the plan, its sidecar last: a sidecar never describes a missing plan."""
    sidecar = sidecar_path(ENGINE_FILENAME).name

    def rank(name: str) -> int:
        return 2 if name == sidecar else 1 if name == ENGINE_FILENAME else 0

    return sorted(names, key=lambda n: (rank(n), n))
