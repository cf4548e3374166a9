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


def plan_export(model: str | Path, engine: bool | None, max_batch: int | None, opset: int) -> ExportPlan:
    """Validate options, then the model's files (card, safetensors header), then TensorRT."""
    check_opset(opset)
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
    return ExportPlan(source, card, max_batch, engine is not False and reason is None,
                      reason if engine is None else None)
