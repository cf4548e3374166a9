"""The CPU's int8 matrix-multiply rate as ONNX Runtime runs it: the ceiling int8 models are held to.

Core tier; onnxruntime is imported inside. Measured the way dcgan_rt.bench measures
the float32 ceiling: two square 2048 x 2048 matrices, every usable core, median of
a few calls. The op is MatMulInteger with uint8 activations and int8 weights (u8s8),
the integer GEMM (MLAS QGEMM) that ONNX Runtime's QLinearConv and QGemm kernels use
on x86; the int32 result is what they accumulate before requantizing.
"""

from __future__ import annotations

import numpy as np


def onnxruntime_int8_gemm_rate(n: int = 2048, repeats: int = 3, threads: int | None = None) -> dict | None:
    """{"ops_per_s", "source"} of ONNX Runtime's u8s8 GEMM on the CPU, or None without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    from dcgan_rt.backends.ort_options import cpu_session_options, usable_cores
    from dcgan_rt.bench import time_calls

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    threads = threads or usable_cores()
    session = ort.InferenceSession(model.SerializeToString(), cpu_session_options(ort, threads),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8), "b": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    seconds = float(np.median(time_calls(lambda: session.run(None, feed), 1, repeats)))
    return {"ops_per_s": 2 * n**3 / seconds,
            "source": f"onnxruntime {ort.__version__} MatMulInteger u8s8 {n}x{n}, {threads} threads"}
