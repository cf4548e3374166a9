"""The model card: the JSON that travels with every generator artifact.

Core tier. The same document is written as generator.json beside
generator.safetensors and into the ONNX file's metadata_props (key
"dcgan_rt.model_card"), so any artifact describes itself. It is validated
against the schema below before use; unknown keys and wrong types are refused.

Schema version 2 (DESIGN §8) adds, all with defaults that describe a version-1 card:
- `inputs`: every input of the generator by name, dtype and shape ("N" = batch), z
  first, then `label` for a conditional model (int64 [N] class indices, or float32
  [N, A] 0/1 attribute vectors);
- `labels`: None, or {"kind": "class" | "attributes", "names": [...], ...} naming the
  classes (in class-index order) or attributes (in label-vector order); an attributes
  card also has "joint": {"vectors": [[0, 1, ...], ...], "weights": [p, ...]}, the
  distinct attribute vectors of the training data and their frequencies (summing to
  1), which generation draws labels from;
- `precision` ("fp32", "fp16", "int8") and `calibration` (None, or how an int8 file
  was calibrated) of the weights this card travels with;
- `dataset` is the data set's name only (never a local path) and `dataset_digest` a
  digest of its file listing (None for built-in sets and version-1 cards).
Version-1 cards are read as version 2 with those defaults.
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
from dcgan_rt.variant_table import PRECISIONS

FORMAT = "dcgan-rt/generator"
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
METADATA_KEY = "dcgan_rt.model_card"
Z_INPUT = "z"
LABEL_INPUT = "label"
LABEL_KINDS = ("class", "attributes")
CARD_PRECISIONS = PRECISIONS  # the variants table's, so a new precision is known to cards at once


def default_inputs(config: ModelConfig) -> list[dict[str, Any]]:
    """The generator's inputs as the card lists them: z, then the label of a conditional model."""
    inputs: list[dict[str, Any]] = [{"name": Z_INPUT, "dtype": "float32", "shape": ["N", config.z_dim]}]
    if config.num_classes:
        inputs.append({"name": LABEL_INPUT, "dtype": "int64", "shape": ["N"]})
    elif config.num_attrs:
        inputs.append({"name": LABEL_INPUT, "dtype": "float32", "shape": ["N", config.num_attrs]})
    return inputs


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
    inputs: list[dict[str, Any]] | None = None  # None: default_inputs(model_config), filled in on construction
    labels: dict[str, Any] | None = None
    precision: str = "fp32"
    calibration: dict[str, Any] | None = None
    dataset_digest: str | None = None

    def __post_init__(self) -> None:
        if self.inputs is None:
            object.__setattr__(self, "inputs", default_inputs(self.model_config))

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
        if isinstance(data.get("schema_version"), bool) or data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise ArtifactError(
                f"{source} has schema_version {data.get('schema_version')!r}; this dcgan-rt "
                f"reads {' and '.join(map(str, READABLE_SCHEMA_VERSIONS))}: upgrade dcgan-rt or re-export the model"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArtifactError(f"{source} has unknown keys {unknown} (edited by hand, or written by a newer "
                                "dcgan-rt?): upgrade dcgan-rt or re-export the model")
        missing = sorted({"model_config"} - set(data))
        if missing:
            raise ArtifactError(f"{source} is missing {missing}")
        if data["schema_version"] == 1:
            v2_only = sorted(set(data) & {"inputs", "labels", "precision", "calibration", "dataset_digest"})
            if v2_only:
                raise ArtifactError(f"{source} is schema_version 1 but has version-2 keys {v2_only}: "
                                    "re-export the model or restore its original card")
        types = {
            "training_step": int, "dataset": str, "weights": str,
            "tool_version": str, "extra": dict, "inputs": list, "precision": str,
        }
        optional = {"labels": dict, "calibration": dict, "dataset_digest": str}
        for key, typ in [*types.items(), *optional.items()]:
            value = data.get(key)
            if key in optional and value is None:
                continue
            if key in data and (not isinstance(value, typ) or isinstance(value, bool)):
                raise ArtifactError(f"{source}: {key!r} must be {typ.__name__}, got {value!r}; re-export the "
                                    "model or restore its original card")
        vr = data.get("value_range", [-1.0, 1.0])
        if (not isinstance(vr, list) or len(vr) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vr)):
            raise ArtifactError(f"{source}: 'value_range' must be [low, high], got {vr!r}")
        try:
            config = ModelConfig.from_dict(data["model_config"])
        except ArtifactError as exc:
            raise ArtifactError(f"{source}: {exc}; re-export the model or restore its original card") from None
        _check_v2_fields(data, config, source)
        kwargs = {k: v for k, v in data.items() if k not in ("model_config", "value_range", "schema_version", "inputs")}
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


JOINT_SUM_TOLERANCE = 1e-6


def _check_joint(joint: Any, num_attrs: int, source: str, fix: str) -> None:
    """An attribute card's joint distribution: distinct 0/1 vectors of num_attrs entries, each
    with a positive weight, the weights summing to 1."""
    if not isinstance(joint, dict) or set(joint) != {"vectors", "weights"}:
        raise ArtifactError(f"{source}: attribute labels need 'joint' = {{'vectors': [...], 'weights': [...]}}, "
                            f"got {joint!r}; {fix}")
    vectors, weights = joint["vectors"], joint["weights"]
    if (not isinstance(vectors, list) or not vectors
            or not all(isinstance(v, list) and len(v) == num_attrs
                       and all(type(b) is int and b in (0, 1) for b in v) for v in vectors)):
        raise ArtifactError(f"{source}: labels 'joint' 'vectors' must be a non-empty list of 0/1 lists of "
                            f"{num_attrs} entries; {fix}")
    if len({tuple(v) for v in vectors}) != len(vectors):
        raise ArtifactError(f"{source}: labels 'joint' lists an attribute vector twice; {fix}")
    if (not isinstance(weights, list) or len(weights) != len(vectors)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights)):
        raise ArtifactError(f"{source}: labels 'joint' 'weights' must be {len(vectors)} positive numbers, one per "
                            f"vector; {fix}")
    if abs(sum(weights) - 1.0) > JOINT_SUM_TOLERANCE:
        raise ArtifactError(f"{source}: labels 'joint' weights sum to {sum(weights)!r}, not 1; {fix}")


def _check_v2_fields(data: dict[str, Any], config: ModelConfig, source: str) -> None:
    """The version-2 keys agree with the architecture (a card is never half-conditional)."""
    fix = "re-export the model or restore its original card"
    # Shapes follow model_config (a hand-edited size is caught against the weights, which say
    # more); names and dtypes must agree, so a card is never half-conditional.
    expected = [(i["name"], i["dtype"]) for i in default_inputs(config)]
    if "inputs" in data and (not all(isinstance(i, dict) for i in data["inputs"])
                             or [(i.get("name"), i.get("dtype")) for i in data["inputs"]] != expected):
        raise ArtifactError(f"{source}: 'inputs' {data['inputs']!r} does not match the model config "
                            f"(expected {default_inputs(config)!r}); {fix}")
    labels = data.get("labels")
    if config.conditional != (labels is not None):
        raise ArtifactError(f"{source}: a {'conditional' if config.conditional else 'unconditional'} model "
                            f"{'needs' if config.conditional else 'cannot have'} 'labels'; {fix}")
    if labels is not None:
        kind, names = labels.get("kind"), labels.get("names")
        want_kind, count = ("class", config.num_classes) if config.num_classes else ("attributes", config.num_attrs)
        if kind != want_kind:
            raise ArtifactError(f"{source}: labels kind must be {want_kind!r} for this model, got {kind!r}; {fix}")
        if (not isinstance(names, list) or len(names) != count or len(set(names)) != count
                or not all(isinstance(n, str) and n for n in names)):
            raise ArtifactError(f"{source}: labels 'names' must be {count} distinct non-empty strings, "
                                f"got {names!r}; {fix}")
        if kind == "attributes":
            _check_joint(labels.get("joint"), count, source, fix)
    if data.get("precision", "fp32") not in CARD_PRECISIONS:
        raise ArtifactError(f"{source}: 'precision' must be one of {', '.join(CARD_PRECISIONS)}, "
                            f"got {data['precision']!r}; {fix}")
