"""The I/O contract of a dcgan-rt ONNX file, and reading card + contract back out of one.

Core tier: numpy-free, and the `onnx` package is imported only inside `read_onnx*`,
so `generate` from an ONNX file never touches torch. Every exported model carries
three JSON documents in metadata_props:

- "dcgan_rt.model_card": the same document as generator.json;
- "dcgan_rt.io": input/output names, dtypes, shapes, precision (and, for uint8
  outputs, the rounding rule). `inputs` lists every input, exactly as the model
  card's `inputs` (z, then `label` for a conditional model); `input` repeats the
  z input, as files written before labels existed had it, so apps that read it
  keep working. Such older files (no `inputs`) are read as having z alone;
- "dcgan_rt.export": provenance of this file (variant, opset, source sha256...).

`read_onnx_card(path)` returns (ModelCard, io) after checking that the card is
valid, that the contract matches the card, and that the graph's real inputs and
outputs match the contract. A runtime that already holds the metadata (e.g.
`onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map`) can call
`card_from_metadata` instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_card import METADATA_KEY, Z_INPUT, ModelCard
from dcgan_rt.variant_table import FLOAT_NCHW, OUTPUTS, PRECISIONS, UINT8_NHWC  # noqa: F401 (re-exported)

INPUT_NAME = Z_INPUT
OUTPUT_NAME = "images"
IO_METADATA_KEY = "dcgan_rt.io"
EXPORT_METADATA_KEY = "dcgan_rt.export"
# The output layouts and precisions a generator file can have live in dcgan_rt.variant_table
# (imported above, so `from dcgan_rt.onnx_card import FLOAT_NCHW` keeps working).
# What the uint8 variants compute (dcgan_rt.pixels implements it in numpy).
UINT8_RULE = "clip(round_half_to_even((x + 1) * 127.5), 0, 255) as uint8, NCHW -> NHWC"

# onnx.TensorProto element types, spelled out so this module need not import onnx.
_ELEM_TYPES = {1: "float32", 2: "uint8", 7: "int64", 10: "float16"}


def io_contract(card: ModelCard, output: str = FLOAT_NCHW, precision: str = "fp32") -> dict:
    """The I/O description stored beside the model card in metadata_props."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    cfg = card.model_config
    c, h, w = cfg.image_shape
    if output == UINT8_NHWC:
        out = {"name": OUTPUT_NAME, "dtype": "uint8", "shape": ["N", h, w, c], "range": [0, 255],
               "rule": UINT8_RULE}
    else:
        out = {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", c, h, w], "range": list(card.value_range)}
    inputs = [dict(spec) for spec in card.inputs]
    return {
        "input": inputs[0],
        "inputs": inputs,
        "output": out,
        "precision": precision,
    }


def with_inputs(io: dict) -> dict:
    """A contract as read from a file written before labels, with `inputs` filled in."""
    io = dict(io)
    if "inputs" not in io and isinstance(io.get("input"), dict):
        io["inputs"] = [io["input"]]  # files written before labels: z was the only input
    return io


def output_kind(io: Mapping[str, Any]) -> str:
    """'uint8-nhwc' or 'float32-nchw' for a validated contract."""
    return UINT8_NHWC if io["output"]["dtype"] == "uint8" else FLOAT_NCHW


def card_from_metadata(metadata: Mapping[str, str], source: str = "ONNX model") -> tuple[ModelCard, dict]:
    """(ModelCard, io contract) from an ONNX file's metadata_props, both validated."""
    if METADATA_KEY not in metadata:
        raise ArtifactError(
            f"{source} is not a dcgan-rt generator (no {METADATA_KEY!r} in its metadata): "
            "export one with 'dcgan-rt export RUN_DIR'"
        )
    card = ModelCard.from_json(metadata[METADATA_KEY], f"{source} model card")
    try:
        io = json.loads(metadata.get(IO_METADATA_KEY, ""))
    except json.JSONDecodeError:
        raise ArtifactError(f"{source} has no readable {IO_METADATA_KEY!r} metadata: re-export it with dcgan-rt export") from None
    if not isinstance(io, dict) or not isinstance(io.get("output"), dict):
        raise ArtifactError(f"{source}: {IO_METADATA_KEY!r} metadata is not an I/O contract: re-export it")
    io = with_inputs(io)
    io.setdefault("precision", "fp32")  # files written before precision was recorded
    kind = UINT8_NHWC if io["output"].get("dtype") == "uint8" else FLOAT_NCHW
    precision = io["precision"] if io["precision"] in PRECISIONS else None
    if precision is None or io != io_contract(card, kind, precision):
        raise ArtifactError(
            f"{source}: its I/O contract does not match its model card "
            f"(z_dim {card.model_config.z_dim}, image {list(card.model_config.image_shape)}): re-export it"
        )
    return card, io


@dataclass(frozen=True)
class OnnxArtifact:
    """Everything `dcgan-rt info` shows about an ONNX file."""

    path: Path
    card: ModelCard
    io: dict
    export: dict = field(default_factory=dict)  # provenance; empty if the file has none
    opset: int = 0
    ir_version: int = 0
    producer: str = ""
    num_nodes: int = 0
    num_parameters: int = 0
    initializer_dtypes: tuple[str, ...] = ()


def read_onnx(path: str | Path) -> OnnxArtifact:
    """Load an ONNX file (no weights are run) and check it is a dcgan-rt generator.

    Read once per file inside a dcgan_rt.digest.file_memo block (generate uses one)."""
    from dcgan_rt.digest import memoized

    return memoized("read_onnx", path, lambda: _read_onnx(Path(path)))


def _read_onnx(path: Path) -> OnnxArtifact:
    model = _load(path)
    metadata = {p.key: p.value for p in model.metadata_props}
    card, io = card_from_metadata(metadata, str(path))
    _check_graph(model, io, str(path))
    try:
        export = json.loads(metadata.get(EXPORT_METADATA_KEY, "{}"))
    except json.JSONDecodeError:
        export = {}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    num_parameters = 0
    for t in model.graph.initializer:
        if t.data_type not in (1, 10):  # count weights, not shape constants
            continue
        n = 1
        for d in t.dims:
            n *= d
        num_parameters += n
    dtypes = sorted({_ELEM_TYPES.get(t.data_type, str(t.data_type)) for t in model.graph.initializer})
    return OnnxArtifact(
        path=path, card=card, io=io, export=export if isinstance(export, dict) else {},
        opset=opset, ir_version=model.ir_version, producer=f"{model.producer_name} {model.producer_version}".strip(),
        num_nodes=len(model.graph.node), num_parameters=num_parameters, initializer_dtypes=tuple(dtypes),
    )


def read_onnx_card(path: str | Path) -> tuple[ModelCard, dict]:
    """(ModelCard, io contract) of a dcgan-rt ONNX file; ArtifactError if it is not one."""
    artifact = read_onnx(path)
    return artifact.card, artifact.io


def _load(path: Path):
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        from dcgan_rt.errors import MissingDependencyError

        raise MissingDependencyError("onnx", "reading an ONNX model") from None
    if not path.is_file():
        raise ArtifactError(f"ONNX model {path} not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ArtifactError(f"{path} is not a readable ONNX file ({type(exc).__name__}): re-export it with dcgan-rt export") from None
    if not model.graph.node:
        raise ArtifactError(f"{path} is not a readable ONNX model (no graph): re-export it with dcgan-rt export")
    from dcgan_rt.safe_load import check_external_data

    check_external_data(model, path)
    return model


def _check_graph(model, io: dict, source: str) -> None:
    """The graph's real inputs and outputs must be the ones the contract promises."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    for role, values, specs in (("input", inputs, io["inputs"]), ("output", list(model.graph.output), [io["output"]])):
        if [v.name for v in values] != [spec["name"] for spec in specs]:
            raise ArtifactError(f"{source}: graph {role}s are {[v.name for v in values]}, the contract promises "
                                f"{[spec['name'] for spec in specs]}: re-export it")
        for value, spec in zip(values, specs):
            tensor = value.type.tensor_type
            dtype = _ELEM_TYPES.get(tensor.elem_type, f"type {tensor.elem_type}")
            dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            fixed = [d for d, want in zip(dims, spec["shape"]) if not isinstance(want, str)]
            wanted = [w for w in spec["shape"] if not isinstance(w, str)]
            if dtype != spec["dtype"] or len(dims) != len(spec["shape"]) or fixed != wanted:
                raise ArtifactError(
                    f"{source}: graph {role} {spec['name']!r} is {dtype} {dims}, the contract promises "
                    f"{spec['dtype']} {spec['shape']}: re-export it"
                )
