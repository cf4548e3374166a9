"""Static int8 quantization of an exported generator: QDQ form, calibrated on z ~ N(0, I).

Export tier (onnx, onnxruntime.quantization). The fp32 graph is first rewritten
for CPUs (dcgan_rt.export.optimize: ConvTranspose -> Gemm + sub-pixel Conv), because
ONNX Runtime has no int8 ConvTranspose: quantized transposed convolutions run as
float with a dequantize in front, slower than fp32, while int8 Conv and Gemm run as
integer kernels. ONNX Runtime's `quantize_static` then inserts
QuantizeLinear/DequantizeLinear pairs:

- weights: int8, symmetric, one scale per output channel, 7-bit (`reduce_range`);
- activations: int8, symmetric (zero point 0, which TensorRT needs), one scale per
  tensor, ranges from calibration;
- calibration data: the generator's own input distribution, latents z(seed, i) of
  dcgan_rt.latents (standard normal), so no data set is needed;
- what stays float: the pixels. Every convolution is int8, the last one too, but
  from the last convolution's output on (its tanh and the sub-pixel interleave) the
  interleave is not quantized and the Q/DQ pairs the quantizer puts there are taken out
  (`float_pixels`), so the image is not rounded to int8 steps. Chosen by measurement
  (docs/export.md, docs/performance.md): pixels as close to fp32 as with the whole
  last layer in float, and faster, since that layer then runs on int8 kernels.

The result is an ordinary ONNX model: OpenVINO runs the convolutions as low-precision
convolutions, TensorRT builds it with explicit quantization (its Q/DQ scales are used
as they are), and ONNX Runtime CPU runs them on its integer kernels once the activations
are uint8, which dcgan-rt's sessions give it (dcgan_rt.backends.ort_graph: the same
values, zero point moved by 128); the file's own int8 activations it leaves in float.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from dcgan_rt.export.optimize import INTERLEAVE
from dcgan_rt.latents import latent_range
from dcgan_rt.onnx_card import INPUT_NAME

CALIBRATION_SEED = 0x1A7E7  # a fixed seed: the same file exports to the same int8 model
CALIBRATION_COUNT = 512
CALIBRATION_BATCH = 64
CALIBRATION_METHOD = "percentile"  # ranges cut at the 99.999th percentile (docs/export.md)


@dataclass(frozen=True)
class Calibration:
    """How an int8 file was calibrated; recorded in its model card (`calibration`)."""

    count: int = CALIBRATION_COUNT
    seed: int = CALIBRATION_SEED
    method: str = CALIBRATION_METHOD  # "percentile" | "minmax" | "entropy"
    reduce_range: bool = True  # 7-bit weights: u8s8 int16 pairs cannot saturate, so every CPU computes the same pixels
    float_nodes: tuple[str, ...] = ()  # the nodes that compute in float: the pixels' (float_pixels)
    activations: str = "int8-symmetric"  # "int8-symmetric" (TensorRT needs zero points of 0) or "uint8"

    def to_card(self) -> dict:
        return {
            "latents": "z(seed, i) for i < count (dcgan_rt.latents): z ~ N(0, I), the generator's own input",
            "seed": self.seed, "count": self.count, "method": self.method,
            "weights": "int8 symmetric, per output channel" + (", 7-bit (reduce_range)" if self.reduce_range else ""),
            "activations": ("int8 symmetric" if self.activations == "int8-symmetric" else "uint8 asymmetric")
                           + ", per tensor",
            "format": "QDQ", "tool": f"onnxruntime.quantization {_ort_version()}",
            "float_nodes": list(self.float_nodes),
        }


class LatentReader:
    """onnxruntime.quantization's CalibrationDataReader over latent batches (with a conditional
    model's default labels y(seed, i), dcgan_rt.labels, as its `label` input)."""

    def __init__(self, z_dim: int, calibration: Calibration, card=None):
        z = latent_range(calibration.seed, 0, calibration.count, z_dim)
        labels = None
        if card is not None and card.labels is not None:
            from dcgan_rt.labels import LabelRequest, make_rule
            from dcgan_rt.model_card import LABEL_INPUT

            rule = make_rule(card, LabelRequest(), 0, calibration.count)
            labels = rule.labels(calibration.seed, np.arange(calibration.count))
        self._batches = iter([
            {INPUT_NAME: z[s:s + CALIBRATION_BATCH],
             **({LABEL_INPUT: labels[s:s + CALIBRATION_BATCH]} if labels is not None else {})}
            for s in range(0, len(z), CALIBRATION_BATCH)
        ])

    def get_next(self):
        return next(self._batches, None)


def last_layer_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes of the generator's last layer: the last Conv / ConvTranspose / Gemm, and the
    other phase convolutions of its sub-pixel rewrite (same weight shape); not the
    rewrite's interleave of the image's phases, which computes nothing."""
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm") and n.input[1] in inits
              and not n.name.endswith(INTERLEAVE)]
    if not layers:
        return []
    shape = inits[layers[-1].input[1]]
    return [n.name for n in layers if inits[n.input[1]] == shape]


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def downstream_of(graph: onnx.GraphProto, layer: list[str],
                  consumers: dict[str, list[onnx.NodeProto]] | None = None) -> tuple[set[str], list[str]]:
    """(every tensor computed from the outputs of the nodes named in `layer`, the names of
    the other nodes that read them); `consumers`: _consumers(graph), when the caller has it."""
    consumers = consumers if consumers is not None else _consumers(graph)
    tensors, todo = set(), [t for n in graph.node if n.name in layer for t in n.output]
    while todo:
        tensor = todo.pop()
        if tensor not in tensors:
            tensors.add(tensor)
            todo.extend(t for c in consumers.get(tensor, []) for t in c.output)
    return tensors, [n.name for n in graph.node if n.name not in layer and any(i in tensors for i in n.input)]


def float_pixels(model: onnx.ModelProto, layer: list[str]) -> list[str]:
    """Take the Q/DQ pairs out of everything downstream of the outputs of the nodes named in
    `layer` (in place, with the scales they leave unused); the names of the nodes there,
    which now compute in float."""
    graph = model.graph
    consumers = _consumers(graph)
    downstream, nodes = downstream_of(graph, layer, consumers)
    producers = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    removed = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in downstream]:
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(dq.op_type != "DequantizeLinear" for dq in dqs):
            continue
        source = q.input[0]
        named = [dq.output[0] for dq in dqs if dq.output[0] in outputs]
        if named:  # a graph output (the images): the float tensor takes its name
            if len(named) > 1 or source in outputs or source not in producers:
                continue
            for node in [producers[source], *consumers.get(source, [])]:
                node.output[:] = [named[0] if t == source else t for t in node.output]
                node.input[:] = [named[0] if t == source else t for t in node.input]
            source = named[0]
        for dq in dqs:
            for node in consumers.get(dq.output[0], []):
                node.input[:] = [source if name == dq.output[0] else name for name in node.input]
            removed.append(dq)
        removed.append(q)
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    gone = {n.name for n in removed}
    return [name for name in nodes if name not in gone]


def quantize_int8(float_model: onnx.ModelProto, z_dim: int, calibration: Calibration | None = None,
                  card=None) -> tuple[onnx.ModelProto, Calibration]:
    """(QDQ int8 model, calibration used) from the CPU-optimized fp32 model. Metadata is
    the caller's to set (the float model's is dropped with the rest of its graph)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibration = calibration or Calibration()
    layer = last_layer_nodes(float_model)
    _, pixels = downstream_of(float_model.graph, layer)  # float: no int8 weights for the interleave either
    symmetric = calibration.activations == "int8-symmetric"
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration.method]
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(float_model, str(src))
        with contextlib.redirect_stdout(io.StringIO()), quiet_root_logger():  # its progress lines and advice
            quantize_static(
                str(src), str(dst), LatentReader(z_dim, calibration, card),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True, reduce_range=calibration.reduce_range, calibrate_method=method,
                nodes_to_exclude=pixels,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                               "CalibMaxIntermediateOutputs": 2},  # histograms per two batches: bounded memory
            )
        model = onnx.load(str(dst))
    float_nodes = float_pixels(model, layer)
    return model, dataclasses.replace(calibration, float_nodes=tuple(float_nodes))


@contextlib.contextmanager
def quiet_root_logger():
    """onnxruntime.quantization logs advice through the root logger at WARNING."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "?"

