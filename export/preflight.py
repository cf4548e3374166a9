"""Everything `dcgan-rt export` can refuse before torch is imported: options and the model files.

Export tier, but imports only the core tier (and onnx for the opset range), so bad
input fails in a fraction of a second with one clear line and nothing written.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from dcgan_rt.errors import ArtifactError, DcganRtError, MissingDependencyError, UsageError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.model_info import safetensors_header
from dcgan_rt.model_path import ModelPath, resolve_model
from dcgan_rt.variant_table import OPTIONS, engine_variant

DEFAULT_OPSET = 18
MIN_OPSET = 17  # torch's exporter silently emits 18 when asked for less than 17
DEFAULT_MAX_BATCH = 1024
MAX_BATCH_LIMIT = 1 << 16


@dataclass(frozen=True)
class ExportPlan:
    source: ModelPath
    card: ModelCard
    max_batch: int
    build_engine: bool
    no_engine_reason: str | None  # why an engine wanted by default cannot be built here


def check_opset(opset: int) -> int:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UsageError(f"--opset must be between {MIN_OPSET} and {newest} (this onnx {onnx.__version__}), got {opset}")
    return opset


def check_max_batch(max_batch: int) -> int:
    if not 1 <= max_batch <= MAX_BATCH_LIMIT:
        raise UsageError(f"--max-batch must be between 1 and {MAX_BATCH_LIMIT}, got {max_batch}")
    return max_batch


def check_variant_options(options, engine: bool | None) -> frozenset[str]:
    """The export options (dcgan_rt.variant_table.OPTIONS), refused when unknown, or when an engine is
    forced from options no single variant has (say --fp16 with --int8)."""
    options = frozenset(options)
    unknown = sorted(options - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown export option {', '.join(unknown)}: choose from {', '.join(OPTIONS)}")
    if engine and engine_variant(options) is None:
        flags = " and ".join(f"--{o}" for o in sorted(options, key=list(OPTIONS).index))
        raise UsageError(f"an engine is built from one precision, and {flags} ask for two: "
                         "export them one at a time, or add --no-engine")
    return options


def plan_export(model: str | Path, engine: bool | None, max_batch: int | None, opset: int,
                options=frozenset()) -> ExportPlan:
    """Validate options, then the model's files (card, safetensors header), then TensorRT."""
    check_opset(opset)
    check_variant_options(options, engine)
    if engine is False and max_batch is not None:
        raise UsageError("--max-batch sets the TensorRT engine's batch profile; it does not apply with --no-engine")
    max_batch = check_max_batch(DEFAULT_MAX_BATCH if max_batch is None else max_batch)
    source = resolve_model(model)
    if source.kind != "safetensors":
        raise ArtifactError(f"{source.path} is an {source.kind} file; export needs the trained weights: "
                            "pass a run directory or generator.safetensors")
    card = ModelCard.load(source.card_path)
    safetensors_header(source.path)
    if importlib.util.find_spec("onnxruntime") is None:
        raise MissingDependencyError("onnxruntime", "export's parity check", extra="cpu")

    from dcgan_rt.export.engine import engine_unavailable_reason

    reason = engine_unavailable_reason() if engine is not False else None
    if engine is True and reason:
        raise DcganRtError(f"--engine: cannot build a TensorRT engine here: {reason}")
    build = engine is not False and reason is None
    check_variant_options(options, build)  # engine by default (a GPU is here): same rule
    return ExportPlan(source, card, max_batch, build, reason if engine is None else None)
