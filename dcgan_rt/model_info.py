"""The model card of any artifact, as one JSON-able dict: what `dcgan-rt info` shows.

Core tier, and fast: no torch. A .safetensors is described from generator.json and
the safetensors header (read directly: 8-byte length + JSON), an .onnx from its
metadata_props and graph, an .engine from its sidecar (TensorRT not needed). Each
is validated on the way, so a damaged or foreign file is one clear error.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from dcgan_rt.digest import sha256_file
from dcgan_rt.engine_sidecar import read_sidecar, sidecar_path
from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.model_path import resolve_model
from dcgan_rt.onnx_card import io_contract, output_kind, read_onnx

_HEADER_LIMIT = 100 << 20  # safetensors caps its JSON header at 100 MB
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm state, not parameters


def describe_model(model: str | Path) -> dict[str, Any]:
    """{file, kind, model_config, io, precision, parameters, provenance, ...} for MODEL."""
    resolved = resolve_model(model)
    describe = {"safetensors": _safetensors, "onnx": _onnx, "engine": _engine}[resolved.kind]
    sha256 = sha256_file(resolved.path)
    info = describe(resolved.path, sha256)
    info["file"] = {
        "path": str(resolved.path), "kind": resolved.kind,
        "bytes": resolved.path.stat().st_size, "sha256": sha256,
        **info.get("file", {}),
    }
    return info


def _card_fields(card: ModelCard) -> dict[str, Any]:
    return {
        "model_config": card.model_config.to_dict(),
        "provenance": {
            "training_step": card.training_step, "dataset": card.dataset, "weights": card.weights,
            "trained_with": f"dcgan-rt {card.tool_version}", **({"extra": card.extra} if card.extra else {}),
        },
        "card": card.to_dict(),
        **({"labels": {"kind": card.labels["kind"], "names": list(card.labels["names"])}} if card.labels else {}),
        **({"calibration": card.calibration} if card.calibration else {}),
    }


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file's length."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ArtifactError(f"{path} is truncated (not a safetensors file): re-export or retrain")
        (n,) = struct.unpack("<Q", head)
        if n > min(_HEADER_LIMIT, size - 8):
            raise ArtifactError(f"{path} is not a valid safetensors file (header length {n} exceeds the file): "
                                "re-export or retrain")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"{path} is not a valid safetensors file (unreadable header): re-export or retrain") from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{path} is not a valid safetensors file (header is not an object)")
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise ArtifactError(f"{path} is not a valid safetensors file (bad entry {key!r})") from None
    if 8 + n + end > size:
        raise ArtifactError(f"{path} is truncated ({size} bytes, its header describes {8 + n + end}): re-export or retrain")
    return header


def _safetensors(path: Path, sha256: str) -> dict[str, Any]:
    card_path = path.with_suffix(".json")
    card = ModelCard.load(card_path)
    header = safetensors_header(path)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    parameters = 0
    for name, entry in tensors.items():
        if name.endswith(_BUFFERS):
            continue
        count = 1
        for d in entry.get("shape", []):
            count *= int(d)
        parameters += count
    dtypes = sorted({str(e.get("dtype", "?")) for e in tensors.values()} - {"I64"})  # I64: BatchNorm counters
    return {
        **_card_fields(card),
        "io": io_contract(card),
        "precision": "fp32" if dtypes == ["F32"] else ", ".join(dtypes),
        "parameters": parameters,
        "tensors": len(tensors),
        "file": {"card_path": str(card_path)},
    }


def _onnx(path: Path, sha256: str) -> dict[str, Any]:
    art = read_onnx(path)
    return {
        **_card_fields(art.card),
        "io": art.io,
        "precision": art.io["precision"],
        "parameters": art.num_parameters,
        "onnx": {"opset": art.opset, "ir_version": art.ir_version, "producer": art.producer,
                 "nodes": art.num_nodes, "initializer_dtypes": list(art.initializer_dtypes)},
        "export": art.export,
    }


def _engine(path: Path, sha256: str) -> dict[str, Any]:
    sidecar = read_sidecar(path)
    if sha256 != sidecar.plan_sha256:
        raise ArtifactError(f"{path} does not match its sidecar {sidecar_path(path).name} (sha256 differs): "
                            "rebuild with dcgan-rt export")
    return {
        **_card_fields(sidecar.model_card),
        "io": sidecar.io,
        "precision": sidecar.precision,
        "output": output_kind(sidecar.io),
        "engine": {
            "tensorrt_version": sidecar.tensorrt_version, "gpu": sidecar.gpu_name,
            "compute_capability": sidecar.compute_capability,
            "batch_profile": {"min": sidecar.batch_min, "opt": sidecar.batch_opt, "max": sidecar.batch_max},
            "onnx_file": sidecar.onnx_file, "onnx_sha256": sidecar.onnx_sha256,
            "workspace_bytes": sidecar.workspace_bytes, "strongly_typed": sidecar.strongly_typed,
            "built_with": f"dcgan-rt {sidecar.tool_version}",
        },
        "file": {"sidecar_path": str(sidecar_path(path))},
    }
