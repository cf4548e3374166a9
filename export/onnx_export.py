"""Export a Generator to one self-contained ONNX file with its model card in metadata_props.

Export tier. Input `z` float32 [N, z_dim] with a dynamic batch axis; output
`images` float32 [N, C, H, W] in [-1, 1]. The torch.export-based exporter
(dynamo=True) folds eval-mode BatchNorm into the transposed convolutions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import onnx
import torch

from dcgan_rt.atomic import atomic_path
from dcgan_rt.model_card import METADATA_KEY, ModelCard
from dcgan_rt.train.networks import Generator

DEFAULT_OPSET = 18
INPUT_NAME = "z"
OUTPUT_NAME = "images"


def io_contract(card: ModelCard, output: str = "float32-nchw") -> dict:
    """The I/O description stored beside the model card in metadata_props."""
    cfg = card.model_config
    c, h, w = cfg.image_shape
    if output == "uint8-nhwc":
        out = {"name": OUTPUT_NAME, "dtype": "uint8", "shape": ["N", h, w, c], "range": [0, 255]}
    else:
        out = {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", c, h, w], "range": list(card.value_range)}
    return {"input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", cfg.z_dim]}, "output": out}


def to_onnx_model(generator: Generator, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace an eval-mode copy of `generator` on the CPU into an in-memory ONNX model."""
    generator = generator.eval().cpu()
    z = torch.zeros(2, generator.cfg.z_dim)
    batch = torch.export.Dim("N", min=1, max=1 << 20)
    # The exporter prints progress lines; keep the CLI's output ours.
    with contextlib.redirect_stdout(io.StringIO()), _quiet_loggers():
        program = torch.onnx.export(
            generator,
            (z,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"z": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def set_metadata(model: onnx.ModelProto, card: ModelCard, output: str = "float32-nchw") -> None:
    entries = {
        METADATA_KEY: card.to_json(),
        "dcgan_rt.io": json.dumps(io_contract(card, output), sort_keys=True),
    }
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "dcgan-rt"
    model.producer_version = card.tool_version


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
