"""The matrix-multiply ceilings: the fastest float32 GEMM installed, and each runtime's own int8 GEMM.

Real runs of numpy, ONNX Runtime and OpenVINO on small matrices (speed is not checked
here: benchmarks/ does that; these check what is measured and how it is reported).
"""

from __future__ import annotations

import pytest

from dcgan_rt.gemm_ceiling import fp32_gemm_ceiling, int8_gemm_rates


def test_fp32_ceiling_is_the_fastest_library_and_names_it():
    ceiling = fp32_gemm_ceiling(n=256, repeats=2)
    rates = ceiling["by_library"]
    assert {"numpy", "onnxruntime", "openvino"} <= set(rates)  # every runtime the dev install has
    assert all(rate > 0 for rate in rates.values())
    assert ceiling["flops_per_s"] == max(rates.values()) == rates[ceiling["library"]]
    assert ceiling["source"].startswith(ceiling["library"]) and "256x256" in ceiling["source"]


def test_int8_gemm_is_measured_per_runtime_on_int8_kernels():
    rates = int8_gemm_rates(n=256, repeats=2)
    assert set(rates) == {"onnxruntime", "openvino"}  # OpenVINO's probe is kept only if it compiled to int8
    for runtime, rate in rates.items():
        assert set(rate["by_activation"]) == {"int8", "uint8"}
        assert rate["ops_per_s"] == max(rate["by_activation"].values()) > 0
        assert rate["source"].startswith(runtime) and "int8 QDQ MatMul" in rate["source"]


@pytest.mark.parametrize("n", [0, -4])
def test_a_matrix_size_below_one_is_refused(n):
    with pytest.raises(ValueError, match="n"):
        fp32_gemm_ceiling(n=n)
