"""How each exported variant is built (fp32 / fp16 / int8 inside, float / uint8 pixels out).

Export tier (torch, onnx). Which variants exist, their files and bounds: the table
in dcgan_rt.variant_table.

- fp16 is decided in torch: BatchNorm is folded into the transposed convolutions
  in float32 first (so the folded weights are rounded to fp16 once), the module is
  cast with `.half()` and wrapped in casts: z float32 -> fp16 -> generator ->
  float32; torch's exporter traces that. The graph is Cast, fp16
  Reshape/ConvTranspose/Relu/Tanh, Cast; TensorRT's strongly typed networks take
  the precision from exactly these types. Why not an ONNX float16 converter: the
  wrapper is a few lines of torch, needs no extra package, and the exporter types
  every node itself, so the graph cannot disagree with the module it came from.
- uint8 is an ONNX tail appended to the float graph, the postprocessing every
  consumer otherwise writes by hand, in float32: Add 1, Mul 127.5, Round (half to
  even), Clip [0, 255], Transpose NCHW -> NHWC, Cast uint8 (dcgan_rt.pixels
  documents the rule). The transpose comes before the cast because TensorRT only
  casts to and from uint8. Appending these six nodes is exact and instant, where a
  second trace through the exporter costs seconds.
- int8 is quantized from the fp32 graph (after its CPU rewrite) by
  dcgan_rt.export.quantize: QDQ, calibrated on latents; the card records how.

The parity check (dcgan_rt.export.parity) vouches for every variant.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dcgan_rt.export.onnx_export import DEFAULT_OPSET, save_onnx, set_metadata, to_onnx_model
from dcgan_rt.export.optimize import optimize_for_cpu
from dcgan_rt.model_card import METADATA_KEY, ModelCard
from dcgan_rt.onnx_card import OUTPUT_NAME
from dcgan_rt.train.networks import Generator
from dcgan_rt.variant_table import FLOAT_NCHW, UINT8_NHWC, VARIANTS, Variant, engine_variant, select_variants

__all__ = ["VARIANTS", "Variant", "engine_variant", "select_variants", "export_variants", "to_variant_model",
           "append_uint8_tail", "fold_batchnorm"]


FP32, FP16, UINT8, FP16_UINT8, INT8, INT8_UINT8 = (VARIANTS[n] for n in (
    "fp32", "fp16", "uint8", "fp16-uint8", "int8", "int8-uint8"))


def fold_batchnorm(generator: Generator) -> Generator:
    """An eval-mode copy with every ConvTranspose2d + BatchNorm2d pair fused (in float32)."""
    g = copy.deepcopy(generator).eval().float()
    layers, fused = list(g.main), []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.ConvTranspose2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            fused.append(fuse_conv_bn_eval(layer, layers[i + 1], transpose=True))
            i += 2
        else:
            fused.append(layer)
            i += 1
    g.main = nn.Sequential(*fused)
    return g


class HalfPrecision(nn.Module):
    """z float32 (and label) -> fp16 generator -> images float32. The label embedding stays
    float32, like z: latent_input runs before the cast."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.cfg = generator.cfg
        self.generator = fold_batchnorm(generator).half()
        if hasattr(self.generator, "label_embed"):
            self.generator.label_embed.float()

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator.main(self.generator.latent_input(z, label).half()).float()


def variant_module(generator: Generator, variant: Variant) -> nn.Module:
    """The torch module traced for `variant` (its float part; the uint8 tail is ONNX)."""
    module: nn.Module = copy.deepcopy(generator).eval().float()
    return HalfPrecision(module).eval() if variant.precision == "fp16" else module


def append_uint8_tail(model: onnx.ModelProto) -> onnx.ModelProto:
    """images float32 (N, C, H, W) in [-1, 1] -> images uint8 (N, H, W, C), in place."""
    graph = model.graph
    out = graph.output[0]
    float_name = f"{OUTPUT_NAME}_float"
    for node in graph.node:
        node.output[:] = [float_name if o == OUTPUT_NAME else o for o in node.output]
    for info in graph.value_info:
        if info.name == OUTPUT_NAME:
            info.name = float_name
    n, c, h, w = (d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim)
    scalar = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.float32), name)  # noqa: E731
    graph.initializer.extend([scalar("uint8_one", 1.0), scalar("uint8_scale", 127.5),
                              scalar("uint8_min", 0.0), scalar("uint8_max", 255.0)])
    graph.node.extend([
        helper.make_node("Add", [float_name, "uint8_one"], ["uint8_shifted"]),
        helper.make_node("Mul", ["uint8_shifted", "uint8_scale"], ["uint8_scaled"]),  # [0, 255]
        helper.make_node("Round", ["uint8_scaled"], ["uint8_rounded"]),  # half to even
        helper.make_node("Clip", ["uint8_rounded", "uint8_min", "uint8_max"], ["uint8_clipped"]),
        helper.make_node("Transpose", ["uint8_clipped"], ["uint8_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Cast", ["uint8_nhwc"], [OUTPUT_NAME], to=TensorProto.UINT8),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, [n, h, w, c]))
    return model


def to_variant_model(generator: Generator, card: ModelCard, variant: Variant, opset: int = DEFAULT_OPSET,
                     provenance: dict | None = None, float_model: onnx.ModelProto | None = None,
                     fp32_model: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """The in-memory ONNX model of one variant, with card, I/O contract and provenance.

    `float_model`: the already built float-output model of the same precision, reused
    for a uint8 variant instead of building it again; `fp32_model`: the fp32 model an
    int8 variant is quantized from (traced when not given)."""
    calibration = None
    if float_model is not None:
        model = onnx.ModelProto()
        model.CopyFrom(float_model)
        calibration = _calibration_of(float_model)
    elif variant.precision == "int8":
        from dcgan_rt.export.quantize import quantize_int8

        fp32_model = fp32_model or optimize_for_cpu(to_onnx_model(variant_module(generator, VARIANTS["fp32"]), opset))
        model, used = quantize_int8(fp32_model, card.model_config.z_dim, card=card)
        calibration = used.to_card()
    else:
        model = to_onnx_model(variant_module(generator, variant), opset)
        if variant.precision == "fp32":
            model = optimize_for_cpu(model)  # same images, faster on CPUs (dcgan_rt.export.optimize)
    if variant.output == UINT8_NHWC:
        append_uint8_tail(model)
    if variant.precision == "int8":  # the card says what the weights in this file are and how they were made
        card = dataclasses.replace(card, precision="int8", calibration=calibration)
    set_metadata(model, card, variant.output, variant.precision,
                 provenance={**(provenance or {}), "variant": variant.name, "opset": opset})
    return model


def _calibration_of(model: onnx.ModelProto) -> dict | None:
    card = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    return ModelCard.from_json(card).calibration if card else None


def export_variants(generator: Generator, card: ModelCard, variants: list[Variant], out_dir: str | Path,
                    opset: int = DEFAULT_OPSET, provenance: dict | None = None,
                    log: Callable[[str], None] = lambda _msg: None) -> dict[str, Path]:
    """Write each variant to out_dir/<variant.filename>; {variant name: path}. Each precision is
    built once (int8 from the fp32 graph); its uint8 variant reuses the float-output graph."""
    out_dir = Path(out_dir)
    float_models: dict[str, onnx.ModelProto] = {}
    paths = {}
    order = {"fp32": 0, "fp16": 1, "int8": 2}  # fp32 before int8, which is quantized from it
    for v in sorted(variants, key=lambda v: (v.output != FLOAT_NCHW, order.get(v.precision, 3))):
        log(f"exporting {v.filename} ({v.name})" + (": calibrating on latents" if v.name == "int8" else ""))
        model = to_variant_model(generator, card, v, opset, provenance, float_models.get(v.precision),
                                 float_models.get("fp32"))
        if v.output == FLOAT_NCHW:
            float_models[v.precision] = model
        paths[v.name] = save_onnx(model, out_dir / v.filename)
    return paths
