"""Export a Generator to one self-contained ONNX file with its model card in metadata_props.

Export tier. Input `z` float32 [N, z_dim] with a dynamic batch axis (and, for a
conditional model, `label`: int64 [N] class indices or float32 [N, A] 0/1
attribute vectors, as the model card's `inputs` list them); output
`images` float32 [N, C, H, W] in [-1, 1] (the uint8 variant: [N, H, W, C]). The
torch.export-based exporter (dynamo=True) folds eval-mode BatchNorm into the
transposed convolutions. The I/O contract itself lives in the core tier
(dcgan_rt.onnx_card) so that readers need no torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch

from dcgan_rt import __version__
from dcgan_rt.atomic import atomic_path
from dcgan_rt.errors import UsageError
from dcgan_rt.export.preflight import DEFAULT_OPSET, MIN_OPSET, check_opset
from dcgan_rt.model_card import METADATA_KEY, ModelCard, default_inputs
from dcgan_rt.onnx_card import (
    EXPORT_METADATA_KEY, FLOAT_NCHW, INPUT_NAME, IO_METADATA_KEY, OUTPUT_NAME, io_contract,
)
from dcgan_rt.train.networks import Generator

__all__ = [
    "DEFAULT_OPSET", "MIN_OPSET", "INPUT_NAME", "OUTPUT_NAME", "check_opset", "io_contract",
    "to_onnx_model", "set_metadata", "save_onnx", "export_onnx",
]

def to_onnx_model(generator: torch.nn.Module, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace `generator` (a Generator, or a variant wrapper with the same `cfg`) in eval
    mode on the CPU into an in-memory ONNX model."""
    check_opset(opset)
    generator = generator.eval().cpu()
    specs = default_inputs(generator.cfg)  # z, and a conditional model's label
    dtypes = {"float32": torch.float32, "int64": torch.int64}
    examples = tuple(torch.zeros(2, *spec["shape"][1:], dtype=dtypes[spec["dtype"]]) for spec in specs)
    batch = torch.export.Dim("N", min=1, max=1 << 20)
    # The exporter prints progress lines; keep the CLI's output ours.
    with contextlib.redirect_stdout(io.StringIO()), _quiet_loggers(), warnings.catch_warnings():
        # z and label share the batch axis N: the exporter says so, and names it N anyway
        warnings.filterwarnings("ignore", message=r".*axis name: N will not be used")
        program = torch.onnx.export(
            generator,
            examples,
            input_names=[spec["name"] for spec in specs],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=tuple({0: batch} for _ in specs),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    produced = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if produced != opset:
        raise UsageError(f"torch's ONNX exporter cannot write opset {opset} (it wrote {produced}): pick another --opset")
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for graph_input in model.graph.input[:len(specs)]:
        graph_input.type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def set_metadata(model: onnx.ModelProto, card: ModelCard, output: str = FLOAT_NCHW,
                 precision: str = "fp32", provenance: dict | None = None) -> None:
    """Write the model card, the I/O contract and (optionally) export provenance."""
    entries = {
        METADATA_KEY: card.to_json(),
        IO_METADATA_KEY: json.dumps(io_contract(card, output, precision), sort_keys=True),
    }
    if provenance is not None:
        entries[EXPORT_METADATA_KEY] = json.dumps(provenance, sort_keys=True)
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "dcgan-rt"
    model.producer_version = __version__


def save_onnx(model: onnx.ModelProto, path: str | Path) -> Path:
    """Check fully, then write atomically as one file (no external data)."""
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)
    return path


def export_onnx(generator: Generator, card: ModelCard, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """The fp32 contract model: z float32 [N, z_dim] -> images float32 [N, C, H, W]."""
    model = to_onnx_model(generator, opset)
    set_metadata(model, card)
    return save_onnx(model, path)


@contextlib.contextmanager
def _quiet_loggers():
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
