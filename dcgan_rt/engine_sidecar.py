"""The JSON sidecar of a TensorRT engine, and loading an engine only after it checks out.

Core tier: reading and checking a sidecar needs no TensorRT; `load_engine` imports
tensorrt lazily. A plan file is the plain serialized engine (no bytes prepended);
`generator.engine.json` beside it says what it is: the model card and I/O contract,
the TensorRT version and GPU it was built for, precision, batch profile, and the
sha256 of both the ONNX it came from and the plan itself.

Engines only run on the TensorRT version and GPU that built them (a plan's kernels
are picked for one GPU model: an H100 PCIe and an H100 SXM share compute capability
9.0 but not their tuning), so `load_engine` checks, in order: the sidecar exists and
parses; the plan's sha256 matches; the TensorRT version matches; the GPU model and
its compute capability match. Only then does it deserialise. Every refusal ends in
"rebuild with dcgan-rt export". TensorRT's own log is shown from WARNING up, so
its warnings (say, a plan built on another device) reach the user.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dcgan_rt import __version__
from dcgan_rt.atomic import write_json
from dcgan_rt.digest import sha256_bytes
from dcgan_rt.errors import ArtifactError, DcganRtError
from dcgan_rt.extras import import_optional
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import io_contract, output_kind, with_inputs
from dcgan_rt.variant_table import PRECISIONS

FORMAT = "dcgan-rt/tensorrt-engine"
SCHEMA_VERSION = 1
REBUILD = "rebuild with dcgan-rt export"


@dataclass(frozen=True)
class EngineSidecar:
    model_card: ModelCard
    io: dict
    precision: str  # dcgan_rt.variant_table.PRECISIONS: what the ONNX it came from computes in
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor"
    batch_min: int
    batch_opt: int
    batch_max: int
    onnx_file: str  # name of the ONNX file it was built from, beside the engine
    onnx_sha256: str
    plan_sha256: str
    plan_bytes: int
    workspace_bytes: int
    strongly_typed: bool = True
    tool_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_card"] = self.model_card.to_dict()
        d["batch_profile"] = {"min": d.pop("batch_min"), "opt": d.pop("batch_opt"), "max": d.pop("batch_max")}
        d["gpu"] = {"name": d.pop("gpu_name"), "compute_capability": d.pop("compute_capability")}
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "EngineSidecar":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"{source} is not a dcgan-rt engine sidecar: {REBUILD}")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ArtifactError(f"{source} has sidecar schema {data.get('schema_version')!r}, expected {SCHEMA_VERSION}: {REBUILD}")
        try:
            card = ModelCard.from_dict(data["model_card"], f"{source} model card")
            profile, gpu = data["batch_profile"], data["gpu"]
            sidecar = cls(
                model_card=card, io=with_inputs(data["io"]) if isinstance(data["io"], dict) else data["io"], precision=str(data["precision"]),
                tensorrt_version=str(data["tensorrt_version"]),
                gpu_name=str(gpu["name"]), compute_capability=str(gpu["compute_capability"]),
                batch_min=int(profile["min"]), batch_opt=int(profile["opt"]), batch_max=int(profile["max"]),
                onnx_file=str(data["onnx_file"]), onnx_sha256=str(data["onnx_sha256"]),
                plan_sha256=str(data["plan_sha256"]), plan_bytes=int(data["plan_bytes"]),
                workspace_bytes=int(data["workspace_bytes"]),
                strongly_typed=bool(data.get("strongly_typed", True)),
                tool_version=str(data.get("tool_version", "")),
            )
        except KeyError as exc:
            raise ArtifactError(f"{source} is missing or mangles {exc}: {REBUILD}") from None
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{source} has a field of the wrong type ({exc}): {REBUILD}") from None
        if sidecar.precision not in PRECISIONS or not isinstance(sidecar.io, dict) \
                or sidecar.io != io_contract(card, output_kind(sidecar.io), sidecar.precision):
            raise ArtifactError(f"{source}: its I/O contract does not match its model card: {REBUILD}")
        return sidecar


def sidecar_path(engine_path: str | Path) -> Path:
    """generator.engine -> generator.engine.json"""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    write_json(path, sidecar.to_dict())
    return path


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ArtifactError(f"{engine_path} has no sidecar ({path.name} beside it): {REBUILD}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path} ({exc}): {REBUILD}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}): {REBUILD}") from None
    return EngineSidecar.from_dict(data, str(path))


def read_plan(engine_path: str | Path, sidecar: EngineSidecar) -> bytes:
    """The plan bytes, refused if they are not the ones the sidecar describes."""
    try:
        data = Path(engine_path).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"engine {engine_path} not found") from None
    if sha256_bytes(data) != sidecar.plan_sha256:
        raise ArtifactError(
            f"{engine_path} does not match its sidecar (sha256 differs: the plan was replaced or damaged): {REBUILD}"
        )
    return data


def check_compatibility(sidecar: EngineSidecar, tensorrt_version: str, compute_capability: str,
                        gpu_name: str) -> None:
    """Refuse an engine built for another TensorRT version, GPU architecture or GPU model."""
    if sidecar.tensorrt_version != tensorrt_version:
        raise ArtifactError(
            f"engine was built with TensorRT {sidecar.tensorrt_version}, this machine has TensorRT "
            f"{tensorrt_version}: {REBUILD}"
        )
    if sidecar.compute_capability != compute_capability:
        raise ArtifactError(
            f"engine was built for a GPU of compute capability {sidecar.compute_capability} "
            f"({sidecar.gpu_name}), this GPU has {compute_capability}: {REBUILD}"
        )
    if sidecar.gpu_name != gpu_name:
        raise ArtifactError(f"engine was built on a {sidecar.gpu_name}, this GPU is a {gpu_name}: {REBUILD}")


@dataclass
class LoadedEngine:
    """A deserialised engine with what keeps it alive (runtime, logger) and its sidecar."""

    engine: Any  # tensorrt.ICudaEngine
    runtime: Any
    logger: Any
    sidecar: EngineSidecar
    path: Path


def load_engine(path: str | Path, device: int = 0) -> LoadedEngine:
    """Check the sidecar against the plan, this TensorRT and this GPU; then deserialise."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"engine {path} not found")
    sidecar = read_sidecar(path)
    plan = read_plan(path, sidecar)
    trt = import_optional("tensorrt", "running a TensorRT engine", extra="gpu")
    from dcgan_rt.gpu import find_gpu

    gpu, reason = find_gpu(device)
    if gpu is None:
        raise DcganRtError(f"cannot run TensorRT engine {path}: {reason}")
    check_compatibility(sidecar, trt.__version__, gpu.compute_capability, gpu.name)
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ArtifactError(f"TensorRT could not deserialise {path}: {REBUILD}")
    return LoadedEngine(engine=engine, runtime=runtime, logger=logger, sidecar=sidecar, path=path)
