"""The model card: the JSON that travels with every generator artifact.

Core tier. The same document is written as generator.json beside
generator.safetensors and into the ONNX file's metadata_props (key
"dcgan_rt.model_card"), so any artifact describes itself. It is validated
against the schema below before use; unknown keys and wrong types are refused.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcgan_rt import __version__
from dcgan_rt.atomic import write_json
from dcgan_rt.config import ModelConfig
from dcgan_rt.errors import ArtifactError

FORMAT = "dcgan-rt/generator"
SCHEMA_VERSION = 1
METADATA_KEY = "dcgan_rt.model_card"


@dataclass(frozen=True)
class ModelCard:
    """What a generator is and where it came from."""

    model_config: ModelConfig
    value_range: tuple[float, float] = (-1.0, 1.0)
    training_step: int = 0
    dataset: str = "unknown"
    weights: str = "ema"  # "ema" (averaged generator, used for sampling) or "raw"
    tool_version: str = __version__
    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance (run dir, seed...)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_config"] = self.model_config.to_dict()
        d["value_range"] = list(self.value_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> "ModelCard":
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ArtifactError(
                f"{source} is not a dcgan-rt generator card (format {data.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ArtifactError(
                f"{source} has schema_version {data.get('schema_version')!r}; this dcgan-rt "
                f"reads {SCHEMA_VERSION}: upgrade dcgan-rt or re-export the model"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArtifactError(f"{source} has unknown keys {unknown} (edited by hand, or written by a newer "
                                "dcgan-rt?): upgrade dcgan-rt or re-export the model")
        missing = sorted({"model_config"} - set(data))
        if missing:
            raise ArtifactError(f"{source} is missing {missing}")
        types = {
            "training_step": int, "dataset": str, "weights": str,
            "tool_version": str, "extra": dict,
        }
        for key, typ in types.items():
            if key in data and (not isinstance(data[key], typ) or isinstance(data[key], bool)):
                raise ArtifactError(f"{source}: {key!r} must be {typ.__name__}, got {data[key]!r}; re-export the "
                                    "model or restore its original card")
        vr = data.get("value_range", [-1.0, 1.0])
        if (not isinstance(vr, list) or len(vr) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vr)):
            raise ArtifactError(f"{source}: 'value_range' must be [low, high], got {vr!r}")
        try:
            config = ModelConfig.from_dict(data["model_config"])
        except ArtifactError as exc:
            raise ArtifactError(f"{source}: {exc}; re-export the model or restore its original card") from None
        kwargs = {k: v for k, v in data.items() if k not in ("model_config", "value_range")}
        return cls(model_config=config, value_range=(float(vr[0]), float(vr[1])), **kwargs)

    @classmethod
    def from_json(cls, text: str, source: str = "model card") -> "ModelCard":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}): re-export the model "
                                "or restore its original card") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ArtifactError(
                f"{path} not found: a generator.safetensors needs its generator.json beside it"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"cannot read {path}: {exc}") from None
        return cls.from_json(text, str(path))
