"""Rewrite a generator's transposed convolutions into forms CPU runtimes run faster.

Export tier (onnx, numpy). A stride-2, 4x4, pad-1 ConvTranspose is four 2x2
convolutions, one per output pixel phase (sub-pixel convolution), interleaved by
DepthToSpace: the same multiply-adds, but as ordinary convolutions, which CPU
runtimes run as well-blocked direct convolutions over the whole batch, instead of a
per-image GEMM followed by a single-threaded col2im. The 4x4 projection of `z`
(a ConvTranspose on a 1x1 input) becomes one Gemm over the batch. Both are exact
rewrites: every output is the same sum of the same products (DESIGN §5 parity holds
with a wide margin; tests check it). Measurements: docs/performance.md.

    phase (a, b) of output pixel (2r + a, 2c + b) reads input rows r-1+a .. r+a and
    columns c-1+b .. c+b, with kernel taps ky = (3, 1) for a = 0 and (2, 0) for a = 1
    (likewise kx for b).

A layer with few output channels (the image's 1 or 3) is one convolution over the
input padded on every side, whose (H+1) x (W+1) grid holds every phase as channels,
phase (a, b) at offset (a, b). What picks the phases out and interleaves them is one
ConvTranspose with a fixed 0/1 weight (stride 2, kernel 2, pad 1: output pixel
(2r + a, 2c + b) is grid pixel (r + a, c + b) of phase (a, b)'s channel), which
runtimes run as one fast kernel; graphs before v2 used four Slices, a Concat and a
DepthToSpace there, which OpenVINO runs on reference kernels (docs/performance.md).
"""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["optimize_for_cpu", "is_optimized", "OPTIMIZED_METADATA_KEY"]

OPTIMIZED_METADATA_KEY = "dcgan_rt.graph"
OPTIMIZED_VALUE = "cpu-subpixel-v2"
KNOWN_VALUES = ("cpu-subpixel-v1", OPTIMIZED_VALUE)  # v1: the image's phases interleaved by Slice/Concat/DepthToSpace
MIN_OPSET = 13  # DepthToSpace with mode, Slice with tensor inputs
ACTIVATIONS = ("Relu", "Tanh", "Sigmoid")
# Below one AVX2 block of output channels, four separate phase convolutions waste most
# of each block; one convolution with all four phases as channels wastes less.
MIN_PHASE_CHANNELS = 8

_TAPS = {0: [3, 1], 1: [2, 0]}  # phase -> kernel taps for the window's (first, second) row
INTERLEAVE = "_interleave"  # name suffix of the image's 0/1 interleave (a ConvTranspose, no layer of the generator)
PHASES = [(0, 0), (0, 1), (1, 0), (1, 1)]  # the order of the phases as channels (DepthToSpace's DCR order)


def is_optimized(model: onnx.ModelProto) -> bool:
    return any(p.key == OPTIMIZED_METADATA_KEY and p.value in KNOWN_VALUES for p in model.metadata_props)


def optimize_for_cpu(model: onnx.ModelProto) -> onnx.ModelProto:
    """A rewritten copy of `model` (same inputs, outputs and metadata), or `model`
    itself when there is nothing to rewrite (non-float32 weights, old opset, unknown
    patterns are left as they are)."""
    if is_optimized(model) or _opset(model) < MIN_OPSET:
        return model
    out = copy.deepcopy(model)
    if not _Rewriter(out.graph).run():
        return model
    out.metadata_props.add(key=OPTIMIZED_METADATA_KEY, value=OPTIMIZED_VALUE)
    return out


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def phase_weight(weight: np.ndarray, a: int, b: int) -> np.ndarray:
    """ConvTranspose weight (C_in, C_out, 4, 4) -> Conv weight (C_out, C_in, 2, 2) of phase (a, b)."""
    w = weight[:, :, _TAPS[a]][:, :, :, _TAPS[b]]  # (C_in, C_out, 2, 2)
    return np.ascontiguousarray(w.transpose(1, 0, 2, 3))


def interleave_weight(c_out: int) -> np.ndarray:
    """The 0/1 ConvTranspose weight (4 c_out, c_out, 2, 2) that takes phase (a, b)'s channel o
    of the padded grid to output pixel (2r + a, 2c + b): tap (1 - a, 1 - b) with pad 1."""
    w = np.zeros((4 * c_out, c_out, 2, 2), np.float32)
    for i, (a, b) in enumerate(PHASES):
        for o in range(c_out):
            w[i * c_out + o, o, 1 - a, 1 - b] = 1.0
    return w


class _Rewriter:
    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.outputs = {o.name for o in graph.output}
        self.names = {n for node in graph.node for n in (*node.input, *node.output, node.name)} | set(self.inits)

    def run(self) -> bool:
        changed = False
        nodes = list(self.graph.node)
        for node in nodes:
            if node.op_type == "ConvTranspose" and node in self.graph.node:
                changed |= self._rewrite(node)
        if changed:
            self._drop_unused_initializers()
            kept = {n for node in self.graph.node for n in node.output}
            keep_vi = [vi for vi in self.graph.value_info if vi.name in kept]
            del self.graph.value_info[:]
            self.graph.value_info.extend(keep_vi)
        return changed

    def _rewrite(self, node: onnx.NodeProto) -> bool:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = self._const(node.input[1])
        if weight is None or weight.dtype != np.float32 or weight.ndim != 4:
            return False
        bias = self._const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and bias is None:
            return False
        c_out = weight.shape[1]
        bias = np.zeros(c_out, np.float32) if bias is None else bias.astype(np.float32)
        kernel = list(attrs.get("kernel_shape", weight.shape[2:]))
        if (attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                or any(attrs.get("output_padding", [0, 0])) or "output_shape" in attrs
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            return False
        strides, pads = list(attrs.get("strides", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
        act = self._fusable_activation(node)
        old = [node] + ([act] if act is not None else [])
        if kernel == [4, 4] and strides == [2, 2] and pads == [1, 1, 1, 1]:
            new = self._subpixel(node, weight, bias, act)
        elif strides == [1, 1] and pads == [0, 0, 0, 0]:
            reshape = self._flat_input_reshape(node, weight.shape[0])
            if reshape is None:
                return False
            old.insert(0, reshape)
            new = self._projection(node, reshape.input[0], weight, bias, act)
        else:
            return False
        self._replace(old, new)
        return True

    def _subpixel(self, node, weight, bias, act):
        x, c_out = node.input[0], weight.shape[1]
        y = act.output[0] if act is not None else node.output[0]
        base = self._fresh(node.name or "convtranspose")
        new = []
        if c_out >= MIN_PHASE_CHANNELS:
            parts = []
            for a, b in PHASES:
                name = f"{base}_p{a}{b}"
                w = self._add_init(f"{name}_w", phase_weight(weight, a, b))
                bi = self._add_init(f"{name}_b", bias)
                # Pad so the 2x2 window of output (r, c) starts at input (r-1+a, c-1+b).
                new.append(helper.make_node("Conv", [x, w, bi], [f"{name}_y"], name=f"{name}_conv",
                                            kernel_shape=[2, 2], pads=[1 - a, 1 - b, a, b]))
                parts.append(self._activate(new, act, f"{name}_y", f"{name}_a"))
            new.append(helper.make_node("Concat", parts, [f"{base}_phases"], name=f"{base}_concat", axis=1))
            new.append(helper.make_node("DepthToSpace", [f"{base}_phases"], [y], name=f"{base}_d2s",
                                        blocksize=2, mode="DCR"))
        else:
            # One convolution over the input padded by 1 on every side: its (H+1) x (W+1)
            # grid holds every phase, phase (a, b) at offset (a, b).
            w = self._add_init(f"{base}_w", np.concatenate([phase_weight(weight, a, b) for a, b in PHASES]))
            bi = self._add_init(f"{base}_b", np.tile(bias, 4))
            new.append(helper.make_node("Conv", [x, w, bi], [f"{base}_grid"], name=f"{base}_conv",
                                        kernel_shape=[2, 2], pads=[1, 1, 1, 1]))
            grid = self._activate(new, act, f"{base}_grid", f"{base}_grid_a")
            pick = self._add_init(f"{base}{INTERLEAVE}_w", interleave_weight(c_out))
            new.append(helper.make_node("ConvTranspose", [grid, pick], [y], name=f"{base}{INTERLEAVE}",
                                        kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]))
        return new

    def _flat_input_reshape(self, node, c_in: int):
        """The Reshape([N, C_in] -> [N, C_in, 1, 1]) feeding only `node`, if that is its input."""
        reshape = self._producer(node.input[0])
        if reshape is None or reshape.op_type != "Reshape" or len(self._consumers(reshape.output[0])) != 1:
            return None
        shape = self._const(reshape.input[1])
        if shape is None or [int(v) for v in shape] != [-1, c_in, 1, 1]:
            return None
        return reshape

    def _projection(self, node, x, weight, bias, act):
        """ConvTranspose of a [N, C_in, 1, 1] input -> Gemm of the [N, C_in] input + Reshape."""
        c_in, c_out, kh, kw = weight.shape
        base = self._fresh(node.name or "projection")
        y = act.output[0] if act is not None else node.output[0]
        w = self._add_init(f"{base}_w", weight.reshape(c_in, c_out * kh * kw))  # (C_in, C_out*k*k), NCHW order
        bi = self._add_init(f"{base}_b", np.repeat(bias, kh * kw))
        target = self._add_init(f"{base}_shape", np.array([-1, c_out, kh, kw], np.int64))
        new = [helper.make_node("Gemm", [x, w, bi], [f"{base}_flat"], name=f"{base}_gemm")]
        if act is not None:
            new.append(helper.make_node("Reshape", [f"{base}_flat", target], [f"{base}_y"], name=f"{base}_reshape"))
            new.append(helper.make_node(act.op_type, [f"{base}_y"], [y], name=f"{base}_{act.op_type.lower()}"))
        else:
            new.append(helper.make_node("Reshape", [f"{base}_flat", target], [y], name=f"{base}_reshape"))
        return new

    def _activate(self, new: list, act, x: str, y: str) -> str:
        if act is None:
            return x
        new.append(helper.make_node(act.op_type, [x], [y], name=f"{y}_node"))
        return y

    def _fusable_activation(self, node):
        """The elementwise activation that alone consumes `node`'s output, if any."""
        if node.output[0] in self.outputs:
            return None
        users = self._consumers(node.output[0])
        if len(users) == 1 and users[0].op_type in ACTIVATIONS and not users[0].attribute:
            return users[0]
        return None

    def _replace(self, old: list, new: list) -> None:
        """Put `new` where the first of `old` was: it reads only what `old` read, and
        its outputs are read only after the last of `old`, so the order stays valid."""
        nodes = list(self.graph.node)
        first = min(nodes.index(n) for n in old)
        kept = [n for n in nodes if n not in old]
        at = sum(1 for n in nodes[:first] if n not in old)
        del self.graph.node[:]
        self.graph.node.extend(kept[:at] + new + kept[at:])

    def _const(self, name: str):
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        producer = self._producer(name)
        if producer is not None and producer.op_type == "Constant":
            for a in producer.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    def _producer(self, name: str):
        return next((n for n in self.graph.node if name in n.output), None)

    def _consumers(self, name: str) -> list:
        return [n for n in self.graph.node if name in n.input]

    def _add_init(self, name: str, value: np.ndarray) -> str:
        name = self._fresh(name)
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.graph.initializer.append(tensor)
        self.inits[name] = tensor
        return name

    def _fresh(self, name: str) -> str:
        candidate, i = name, 1
        while candidate in self.names:
            candidate, i = f"{name}_{i}", i + 1
        self.names.add(candidate)
        return candidate

    def _drop_unused_initializers(self) -> None:
        used = Counter(n for node in self.graph.node for n in node.input)
        used.update(o.name for o in self.graph.output)
        kept = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        graph_inputs = [i for i in self.graph.input if i.name not in self.inits or i.name in used]
        del self.graph.input[:]
        self.graph.input.extend(graph_inputs)
