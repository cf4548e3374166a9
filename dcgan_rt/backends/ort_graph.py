"""The graph ONNX Runtime's CPU provider runs: a file's graph in the forms it runs fastest.

Core tier (onnx, numpy). Each file keeps one graph for every runtime; when the ONNX
Runtime backend builds a CPU session it hands over a copy rewritten in memory
(10-35 ms on the default generator, once per job; the file on disk is never
changed), with two changes, each exact or within the rounding of the int8 file itself:

- **Phase interleaves as two Concats, not a DepthToSpace.** The sub-pixel graph
  (dcgan_rt.export.optimize) interleaves the four phase outputs of every inner layer
  with a channel Concat and a DepthToSpace: OpenVINO's fastest form. ONNX Runtime runs
  that DepthToSpace as a general 6-D transpose, 12 % of its time on the default 64x64
  generator. The same pixels come from a Concat that pairs the two column phases of
  each row phase element by element and a Concat that stacks the two row phases row
  by row (reshapes in between copy nothing): ONNX Runtime copies both at about memory
  speed, OpenVINO at a third of its DepthToSpace speed (the whole generator: half its
  speed). Every output value is copied, none computed: bit for bit the same.

      phase (a, b) holds output pixels (2r + a, 2c + b), as DepthToSpace's DCR order says:
      columns:  q_a = Reshape(Concat(p_a0[..., None], p_a1[..., None], axis=4), (N, C, H, 2W))
      rows:     y   = Reshape(Concat(q_0, q_1, axis=3), (N, C, 2H, 2W))

- **int8 activations as uint8.** `export --int8` writes symmetric int8 activations
  (zero point 0), which TensorRT requires and OpenVINO compiles; ONNX Runtime fuses its
  QDQ convolutions into integer kernels only with uint8 activations, and otherwise runs
  every convolution in float between a dequantize and a quantize, slower than the fp32
  file. The same quantization in uint8 with the zero point moved by 128 stores q + 128
  for every q and dequantizes to the same values; fused, the convolutions accumulate in
  integers, whose rounding differs from the float path's by a level at most on rare
  pixels (docs/performance.md, int8 section).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dcgan_rt.digest import memoized

__all__ = ["interleave_by_concat", "uint8_activations", "cpu_session_model"]


def cpu_session_model(path: str | Path) -> bytes | None:
    """The serialized model ONNX Runtime's CPU provider should run for the file at `path`,
    or None when there is nothing to rewrite: no DepthToSpace interleave and no int8
    activations, weights kept in external files (which a model loaded from bytes could
    not find), or a file that does not parse (ONNX Runtime then reports it, loading it
    by path)."""
    return memoized("ort-cpu-graph", path, lambda: _rewritten(Path(path)))


def _rewritten(path: Path) -> bytes | None:
    data = path.read_bytes()
    if b"DepthToSpace" not in data and b"QuantizeLinear" not in data:
        return None
    try:
        model = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: ONNX Runtime words it for the user
        return None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return None
    try:
        rewritten = interleave_by_concat(model) | uint8_activations(model)
    except Exception:  # noqa: BLE001 - a graph this rewrite does not understand runs as written
        return None
    return model.SerializeToString() if rewritten else None


def interleave_by_concat(model: onnx.ModelProto) -> bool:
    """Rewrite, in place, every Concat(axis 1, 4 phases) -> DepthToSpace(2, DCR) of `model`;
    True when one was rewritten."""
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    readers, outputs, taken = _readers(graph), {o.name for o in graph.output}, _names(graph)
    replaced: dict[int, list] = {}  # node index -> the nodes that take its place ([] for a dropped Concat)
    for i, node in enumerate(nodes):
        c = producer.get(node.input[0]) if node.op_type == "DepthToSpace" and node.input else None
        if c is not None and _is_phase_interleave(node, nodes[c], readers, outputs):
            replaced[c] = []
            replaced[i] = _concat_interleave(list(nodes[c].input), node.output[0], node.name or "d2s", taken, graph)
    if not replaced:
        return False
    gone = {nodes[i].output[0] for i, new in replaced.items() if not new}  # the Concats' outputs
    del graph.node[:]
    for i, node in enumerate(nodes):
        graph.node.extend(replaced.get(i, [node]))
    kept = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return True


def _is_phase_interleave(d2s, concat, readers: dict[str, list], outputs: set[str]) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in d2s.attribute}
    mode = attrs.get("mode", b"DCR")
    concat_axis = next((helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), None)
    return (concat.op_type == "Concat" and concat_axis == 1 and len(concat.input) == 4
            and attrs.get("blocksize") == 2 and mode in (b"DCR", "DCR")
            and len(readers.get(concat.output[0], [])) == 1 and concat.output[0] not in outputs)


def _concat_interleave(phases: list[str], y: str, base: str, taken: set[str], graph) -> list:
    def fresh(suffix: str) -> str:
        return _fresh(f"{base}_{suffix}", taken)

    def const(suffix: str, values) -> str:
        name = fresh(suffix)
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    add_axis, merge_last, doubled = const("add_axis", [0, 0, 0, 0, 1]), const("merge_last", [0, 0, 0, -1]), \
        const("doubled", [1, 1, 2, 2])
    nodes, rows = [], []
    for a in (0, 1):
        columns = []
        for b in (0, 1):
            column = fresh(f"p{a}{b}_5d")
            nodes.append(helper.make_node("Reshape", [phases[2 * a + b], add_axis], [column], name=column))
            columns.append(column)
        paired, row = fresh(f"row{a}_pairs"), fresh(f"row{a}")
        nodes.append(helper.make_node("Concat", columns, [paired], name=paired, axis=4))
        nodes.append(helper.make_node("Reshape", [paired, merge_last], [row], name=row))
        rows.append(row)
    stacked, shape, out_shape = fresh("rows"), fresh("phase_shape"), fresh("out_shape")
    nodes += [helper.make_node("Concat", rows, [stacked], name=stacked, axis=3),
              helper.make_node("Shape", [phases[0]], [shape], name=shape),
              helper.make_node("Mul", [shape, doubled], [out_shape], name=out_shape),
              helper.make_node("Reshape", [stacked, out_shape], [y], name=fresh("interleave"))]
    return nodes


def uint8_activations(model: onnx.ModelProto) -> bool:
    """Rewrite, in place, every activation QuantizeLinear with an int8 zero point, and the
    DequantizeLinear nodes that read it, to uint8 with the zero point + 128; True when
    the graph had such pairs. Left alone (False) unless every reader of every such
    quantized tensor is a DequantizeLinear with the same scale and zero point."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers, outputs = _readers(graph), {o.name for o in graph.output}
    pairs = []
    for node in graph.node:
        if (node.op_type != "QuantizeLinear" or node.input[0] in inits or len(node.input) < 3
                or node.input[2] not in inits or numpy_helper.to_array(inits[node.input[2]]).dtype != np.int8):
            continue
        dqs = readers.get(node.output[0], [])
        if node.output[0] in outputs or not dqs or any(
                d.op_type != "DequantizeLinear" or list(d.input[1:3]) != list(node.input[1:3]) for d in dqs):
            return False
        pairs.append((node, dqs))
    if not pairs:
        return False
    moved: dict[str, str] = {}
    taken = _names(graph)
    for q, dqs in pairs:
        old = q.input[2]
        if old not in moved:
            moved[old] = _fresh(f"{old}_uint8", taken)
            zero = numpy_helper.to_array(inits[old]).astype(np.int16) + 128
            graph.initializer.append(numpy_helper.from_array(zero.astype(np.uint8), moved[old]))
        for node in (q, *dqs):
            node.input[2] = moved[old]
    used = {n for node in graph.node for n in node.input}
    kept = [t for t in graph.initializer if t.name in used or t.name not in moved]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return True


def _readers(graph: onnx.GraphProto) -> dict[str, list]:
    """{tensor name: the nodes that read it}."""
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor and node name in use in `graph`."""
    names = {n for node in graph.node for n in (*node.input, *node.output, node.name)}
    return names | {t.name for t in graph.initializer} | {v.name for v in (*graph.input, *graph.output,
                                                                            *graph.value_info)}


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or `name_1`, `name_2`, ... whichever is not taken yet; now taken."""
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate
