"""Resolve the MODEL argument every command takes into one concrete artifact.

Core tier. MODEL is a run directory, a generator.safetensors (generator.json beside
it), an .onnx file, or a TensorRT .engine (its .json sidecar beside it). A run
directory resolves to its generator.safetensors; `runs/latest` works like any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcgan_rt.errors import ArtifactError

KINDS = ("safetensors", "onnx", "engine")


@dataclass(frozen=True)
class ModelPath:
    kind: str  # one of KINDS
    path: Path  # the weights / graph / plan file

    @property
    def card_path(self) -> Path:
        """The JSON beside it: generator.json for safetensors, the sidecar for an engine."""
        if self.kind == "safetensors":
            return self.path.with_suffix(".json")
        return self.path.with_suffix(self.path.suffix + ".json") if self.kind == "engine" else self.path


def resolve_model(model: str | Path) -> ModelPath:
    path = Path(model)
    if path.is_dir():
        candidate = path / "generator.safetensors"
        if candidate.is_file():
            return ModelPath("safetensors", candidate)
        raise ArtifactError(
            f"{path} is a directory without generator.safetensors: pass a run directory made by "
            "'dcgan-rt train', or a .safetensors/.onnx/.engine file"
        )
    if not path.exists():
        raise ArtifactError(f"model {path} not found: pass a run directory, .safetensors, .onnx or .engine file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return ModelPath("safetensors", path)
    if suffix == ".onnx":
        return ModelPath("onnx", path)
    if suffix in (".engine", ".plan", ".trt"):
        return ModelPath("engine", path)
    raise ArtifactError(
        f"{path}: unknown model file type {suffix or '(none)'}; expected a run directory, "
        ".safetensors, .onnx or .engine"
    )
