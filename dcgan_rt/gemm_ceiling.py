"""The CPU's matrix-multiply ceilings: the fastest float32 GEMM and each runtime's int8 GEMM.

Core tier: numpy at import; onnxruntime, openvino and onnx are imported inside, and
torch only when something else has loaded it already (benchmarking an ONNX file
never pays for importing torch).

Every probe is measured the same way: C = A @ B of two square n x n matrices
(n = 2048), A a run-time input and B a constant, as a model's weights are, with
every usable core; one untimed call, then the median of `repeats` (5) calls; rate =
2 n^3 / median seconds.

- **fp32 ceiling** (`fp32_gemm_ceiling`): the fastest float32 GEMM available here:
  numpy's BLAS, torch.matmul (when torch is loaded), an ONNX `MatMul` run by ONNX
  Runtime (intra-op threads = cores) and the same graph compiled by OpenVINO (one
  stream, every core, f32 pinned). The result names the winner and lists every rate.
  numpy alone is not a ceiling: on AVX-512 CPUs oneDNN's and MLAS's kernels run
  ~1.7x faster than OpenBLAS, and the runtimes ran the generator above it.
- **int8 GEMM** (`int8_gemm_rates`): per runtime, the same product as an int8
  QDQ graph (QuantizeLinear -> DequantizeLinear on A, int8 B with one scale per
  output column -> MatMul), which ONNX Runtime runs as its u8s8/s8s8 QGEMM (MLAS)
  and OpenVINO's low-precision transformations compile to an int8 FullyConnected
  (oneDNN): the form `dcgan-rt export --int8` writes. Activations are tried as
  int8 (zero point 0, what the exported file uses) and as uint8 (zero point 128);
  the faster counts, so a model's share of it is never flattered.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from typing import Callable

import numpy as np

from dcgan_rt.environment import usable_cores

GEMM_N = 2048


def time_calls(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def gemm_rate(fn: Callable[[], object], n: int, repeats: int, warmup: int = 1) -> float:
    """Operations per second of one n x n x n product run by `fn` (2 n^3 per call)."""
    return 2 * n**3 / float(np.median(time_calls(fn, warmup, repeats)))


def fp32_gemm_ceiling(n: int = GEMM_N, repeats: int = 5, threads: int | None = None) -> dict:
    """{"flops_per_s", "library", "source", "by_library"}: the fastest float32 GEMM here and who ran it."""
    threads = _check(n, repeats, threads)
    rates, sources = {}, {}
    for library, (run, source) in _fp32_probes(n, threads).items():
        rates[library], sources[library] = gemm_rate(run, n, repeats), source
    best = max(rates, key=rates.get)
    return {"flops_per_s": rates[best], "library": best,
            "source": f"{sources[best]} float32 matmul {n}x{n}, {threads} threads (fastest of {', '.join(rates)})",
            "by_library": rates}


def int8_gemm_rates(n: int = GEMM_N, repeats: int = 5, threads: int | None = None) -> dict[str, dict]:
    """{runtime: {"ops_per_s", "source", "by_activation"}} for each installed runtime."""
    threads = _check(n, repeats, threads)
    found = {}
    for runtime, probes in _int8_probes(n, threads).items():
        by_activation = {act: gemm_rate(run, n, repeats) for act, (run, _) in probes.items()}
        best = max(by_activation, key=by_activation.get)
        found[runtime] = {"ops_per_s": by_activation[best], "by_activation": by_activation,
                          "source": f"{probes[best][1]} int8 QDQ MatMul {n}x{n}, {best} activations, {threads} threads"}
    return found


def _check(n: int, repeats: int, threads: int | None) -> int:
    if n < 1 or repeats < 1:
        raise ValueError(f"the GEMM probe needs n >= 1 and repeats >= 1, got n={n}, repeats={repeats}")
    return threads or usable_cores()


def _matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)


def _fp32_probes(n: int, threads: int) -> dict[str, tuple[Callable[[], object], str]]:
    probes = dict(_built_fp32_probes(n, threads))  # cached: sessions are built once per process
    torch = sys.modules.get("torch")  # None when absent, or blocked as in the no-torch tests
    if torch is not None:
        a, b = (torch.from_numpy(m) for m in _matrices(n))
        out = torch.empty_like(a)
        previous = torch.get_num_threads()

        def run_torch():
            torch.set_num_threads(threads)
            try:
                torch.matmul(a, b, out=out)
            finally:
                torch.set_num_threads(previous)

        probes["torch"] = (run_torch, f"torch {torch.__version__}")
    return probes


@functools.lru_cache(maxsize=2)
def _built_fp32_probes(n: int, threads: int) -> tuple:
    a, b = _matrices(n)
    out = np.empty_like(a)
    probes = [("numpy", (lambda: np.matmul(a, b, out=out), f"numpy ({_blas_name()})"))]
    model = _matmul_model(n, b)
    if model is not None:
        with contextlib.suppress(ImportError):
            probes.append(("onnxruntime", _ort_probe(model, a, threads)))
        with contextlib.suppress(ImportError, RuntimeError):
            probes.append(("openvino", _openvino_probe(model, a, threads)))
    return tuple(probes)


@functools.lru_cache(maxsize=2)
def _int8_probes(n: int, threads: int) -> dict[str, dict[str, tuple[Callable[[], object], str]]]:
    a, b = _matrices(n)
    found: dict[str, dict] = {}
    for activations in ("int8", "uint8"):
        model = _qdq_matmul_model(n, b, activations)
        if model is None:
            return found
        with contextlib.suppress(ImportError):
            found.setdefault("onnxruntime", {})[activations] = _ort_probe(model, a, threads)
        with contextlib.suppress(ImportError, RuntimeError):
            found.setdefault("openvino", {})[activations] = _openvino_probe(model, a, threads, int8=True)
    return found


def _matmul_model(n: int, b: np.ndarray):
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    return _model(helper, [helper.make_node("MatMul", ["a", "b"], ["c"])], [numpy_helper.from_array(b, "b")],
                  n, TensorProto)


def _qdq_matmul_model(n: int, b: np.ndarray, activations: str):
    """a -> Q -> DQ -> MatMul(., DQ(int8 B, a scale per column)): the int8 layer of an exported file."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    act_dtype, zero = (np.int8, 0) if activations == "int8" else (np.uint8, 128)
    scale = np.abs(b).max(axis=0) / 127
    inits = [numpy_helper.from_array(np.array(4.0 / 127, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(zero, act_dtype), "a_zero"),
             numpy_helper.from_array(np.round(b / scale).astype(np.int8), "b_q"),
             numpy_helper.from_array(scale.astype(np.float32), "b_scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "b_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "a_scale", "a_zero"], ["a_q"]),
             helper.make_node("DequantizeLinear", ["a_q", "a_scale", "a_zero"], ["a_dq"]),
             helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b_dq"], axis=1),
             helper.make_node("MatMul", ["a_dq", "b_dq"], ["c"])]
    return _model(helper, nodes, inits, n, TensorProto)


def _model(helper, nodes, inits, n: int, tensor_proto):
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("a", tensor_proto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", tensor_proto.FLOAT, [n, n])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _ort_probe(model: bytes, a: np.ndarray, threads: int) -> tuple[Callable[[], object], str]:
    import onnxruntime as ort

    from dcgan_rt.backends.ort_options import cpu_session_options

    session = ort.InferenceSession(model, cpu_session_options(ort, threads, spinning=True), providers=["CPUExecutionProvider"])
    feed = {"a": a}
    return (lambda: session.run(None, feed)), f"onnxruntime {ort.__version__}"


def _openvino_probe(model: bytes, a: np.ndarray, threads: int, int8: bool = False) -> tuple[Callable[[], object], str]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(model, b""), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    if int8 and not _runs_int8(compiled):
        raise RuntimeError("OpenVINO compiled the QDQ MatMul to float kernels")
    request = compiled.create_infer_request()
    return (lambda: request.infer({0: a}, share_inputs=True)), f"openvino {ov.__version__.split('-')[0]}"


def _runs_int8(compiled) -> bool:
    """Whether the compiled graph's matrix product runs on integer inputs (oneDNN int8)."""
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("FullyConnected", "MatMul"):
            return info["runtimePrecision"].astype(str) in ("i8", "u8")
    return False


def _blas_name() -> str:
    with contextlib.suppress(Exception):
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    return "BLAS"
