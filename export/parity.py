"""Parity: does an exported artifact compute what the PyTorch generator computes?

Export tier. Every export runs each variant on fresh random latents and compares
it with the PyTorch fp32 generator on the same latents, within the bounds of
DESIGN §5 (the table below). `export` and `doctor` both use these checks.

The bounds are the variants table's (dcgan_rt.variant_table): fp32 1e-4, fp16
3e-2 / mean 3e-3, uint8 1 level, fp16-uint8 5 / mean 1.5 levels, int8 (either
output) in pixel levels, a maximum and a 99th percentile. A bound in levels compares
pixels: a float output goes through dcgan_rt.pixels' uint8 rule first.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dcgan_rt.batch import Batch, as_batch
from dcgan_rt.errors import NumericalError
from dcgan_rt.latents import latent_range
from dcgan_rt.onnx_card import UINT8_NHWC
from dcgan_rt.pixels import to_uint8_nhwc
from dcgan_rt.variant_table import VARIANTS, Bound

__all__ = ["BOUNDS", "Bound", "ParityResult", "check_parity", "errors", "fresh_inputs", "fresh_latents", "reference_images"]

Runner = Callable[[Batch | np.ndarray], np.ndarray]  # a Batch (z and labels), or bare z


BOUNDS = {(v.precision, v.output): v.bound for v in VARIANTS.values()}


@dataclass(frozen=True)
class ParityResult:
    variant: str
    backend: str
    max_abs: float
    mean_abs: float
    bound: Bound
    count: int  # images compared
    p99: float = math.nan  # 99th percentile of the absolute difference

    def describe(self) -> str:
        """'max 3, mean 0.2' (and ', p99 1' where the bound has a percentile)."""
        text = f"max {self.max_abs:.3g}, mean {self.mean_abs:.3g}"
        return text + (f", p99 {self.p99:.3g}" if self.bound.p99 is not None else "")

    @property
    def passed(self) -> bool:
        if not (math.isfinite(self.max_abs) and math.isfinite(self.mean_abs)):
            return False
        if self.max_abs > self.bound.max_abs:
            return False
        if self.bound.p99 is not None and not self.p99 <= self.bound.p99:
            return False
        return self.bound.mean_abs is None or self.mean_abs <= self.bound.mean_abs


def fresh_latents(count: int, z_dim: int, seed: int | None = None) -> tuple[int, np.ndarray]:
    """(seed, z): latents z(seed, 0..count-1) for a new random seed unless one is given."""
    seed = secrets.randbelow(2**32) if seed is None else seed
    return seed, latent_range(seed, 0, count, z_dim)


def fresh_inputs(count: int, card, seed: int | None = None) -> tuple[int, Batch]:
    """(seed, Batch): latents z(seed, 0..count-1) for a new random seed unless one is given,
    and for a conditional model the default labels y(seed, i) (every class, or the card's
    joint distribution of attributes; dcgan_rt.labels)."""
    from dcgan_rt.labels import LabelRequest, make_rule

    seed, z = fresh_latents(count, card.model_config.z_dim, seed)
    rule = make_rule(card, LabelRequest(), 0, count)
    indices = np.arange(count, dtype=np.int64)
    return seed, Batch(indices, z, None if rule is None else rule.labels(seed, indices))


def reference_images(generator, inputs: Batch | np.ndarray, chunk: int = 256) -> np.ndarray:
    """The PyTorch fp32 generator on the CPU: float32 (N, C, H, W)."""
    import torch

    generator = generator.eval().float().cpu()
    batch = as_batch(inputs)
    outs = []
    with torch.no_grad():
        for s in range(0, len(batch), chunk):
            part = batch.take(s, s + chunk)
            args = [torch.from_numpy(np.ascontiguousarray(a)) for a in (part.z, part.labels) if a is not None]
            outs.append(generator(*args).numpy())
    return np.concatenate(outs).astype(np.float32, copy=False)


def errors(output: str, got: np.ndarray, reference: np.ndarray, levels: bool = False) -> tuple[float, float]:
    """(max abs, mean abs) of `got` against the reference, in the output's units (pixel
    levels for a uint8 output, or for any output when `levels`). The reference is float
    images (turned into pixels by the uint8 rule where needed) or pixels already."""
    diff = abs_difference(output, got, reference, levels)
    if diff is None:
        return math.nan, math.nan
    return float(diff.max()), float(diff.mean())


def abs_difference(output: str, got: np.ndarray, reference: np.ndarray, levels: bool = False) -> np.ndarray | None:
    """|got - reference| as float64, in the units `errors` describes; None when `got` is not finite."""
    if levels and output != UINT8_NHWC:
        if not np.isfinite(got).all():
            return None
        got, output = to_uint8_nhwc(got), UINT8_NHWC
    pixels = output == UINT8_NHWC and reference.dtype != np.uint8
    expected = to_uint8_nhwc(reference) if pixels else reference
    if got.shape != expected.shape:
        raise NumericalError(f"output shape {list(got.shape)}, expected {list(expected.shape)}")
    if output == UINT8_NHWC:
        if got.dtype != np.uint8:
            raise NumericalError(f"output dtype {got.dtype}, expected uint8")
        return np.abs(got.astype(np.int16) - expected.astype(np.int16)).astype(np.float64)
    if not np.isfinite(got).all():
        return None
    return np.abs(got.astype(np.float64) - expected.astype(np.float64))


def check_finite_reference(reference: np.ndarray, seed: int) -> None:
    """Refuse a PyTorch generator whose own output holds NaN or inf: no export of it can pass parity."""
    bad = ~np.isfinite(reference.reshape(len(reference), -1)).all(axis=1)
    if bad.any():
        raise NumericalError(
            f"the generator itself outputs NaN or infinite values ({int(bad.sum())} of {len(bad)} images, latent seed "
            f"{seed}): its weights are broken (a diverged run?); export an earlier checkpoint or retrain. "
            "Nothing was written"
        )


def check_parity(variant: str, precision: str, output: str, backend: str, runner: Runner,
                 inputs: Batch | np.ndarray, reference: np.ndarray,
                 batch_sizes: Sequence[int] | None = None) -> ParityResult:
    """Run `runner` over the inputs (in batches of `batch_sizes`, cycling; default one batch) and compare."""
    batch = as_batch(inputs)
    got, start, i = [], 0, 0
    sizes = list(batch_sizes or [len(batch)])
    while start < len(batch):
        n = sizes[i % len(sizes)]
        got.append(np.asarray(runner(batch.take(start, start + n))))
        start, i = start + n, i + 1
    bound = BOUNDS[(precision, output)]
    diff = abs_difference(output, np.concatenate(got), reference, levels=bound.unit == "levels")
    if diff is None:
        return ParityResult(variant, backend, math.nan, math.nan, bound, len(batch))
    return ParityResult(variant, backend, float(diff.max()), float(diff.mean()), bound, len(batch),
                        float(np.percentile(diff, 99)))


def raise_on_failure(results: Sequence[ParityResult], seed: int) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        what = "; ".join(
            f"{r.variant} on {r.backend}: " + (
                f"{r.describe()} ({r.bound.describe()})"
                if math.isfinite(r.max_abs) and math.isfinite(r.mean_abs) else "its output holds NaN or infinite values"
            ) for r in failed
        )
        raise NumericalError(f"parity check failed (latent seed {seed}): {what}")


PROVIDER_CHOICE = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda",
                   "TensorrtExecutionProvider": "tensorrt"}


def onnxruntime_runner(path: str | Path, provider: str = "CPUExecutionProvider", device_id: int = 0) -> Runner:
    """ONNX Runtime on one execution provider, as z -> model output: the very backend
    `generate --backend onnxruntime` builds (same provider options, e.g. TF32 off on
    the CUDA EP), pinned to that provider; one that does not start is an error."""
    from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, providers=PROVIDER_CHOICE[provider], device_id=device_id)
    return backend.__call__


def reference_evaluator_runner(path: str | Path) -> Runner:
    """onnx.reference: ONNX's own numpy implementation of every op (slow; small batches)."""
    from onnx.reference import ReferenceEvaluator

    from dcgan_rt.onnx_card import read_onnx_card

    evaluator = ReferenceEvaluator(str(path))
    names = [spec["name"] for spec in read_onnx_card(path)[1]["inputs"]]  # z, then label if any

    def run(inputs) -> np.ndarray:
        batch = as_batch(inputs)
        return evaluator.run(None, dict(zip(names, (batch.z, batch.labels))))[0]

    return run


def backend_name(provider: str) -> str:
    """'CPUExecutionProvider' -> 'onnxruntime-cpu'."""
    short = provider.removesuffix("ExecutionProvider").lower()
    return f"onnxruntime-{short}"
