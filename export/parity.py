"""Parity: does an exported artifact compute what the PyTorch generator computes?

Export tier. Every export runs each variant on fresh random latents and compares
it with the PyTorch fp32 generator on the same latents, within the bounds of
DESIGN §5 (the table below). `export` and `doctor` both use these checks.

| variant    | compared with                                 | max abs    | mean abs   |
| ---------- | --------------------------------------------- | ---------- | ---------- |
| fp32       | PyTorch fp32                                  | 1e-4       | -          |
| fp16       | PyTorch fp32                                  | 3e-2       | 3e-3       |
| uint8      | PyTorch fp32 through dcgan_rt.pixels' rule    | 1 level    | -          |
| fp16-uint8 | PyTorch fp32 through dcgan_rt.pixels' rule    | 5 levels   | 1.5 levels |

The fp16-uint8 bound is the fp16 bound in pixel levels (x 127.5) plus one level of
rounding, rounded up: 3e-2 * 127.5 + 1 = 4.8 and 3e-3 * 127.5 + 1 = 1.4.
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
from dcgan_rt.onnx_card import FLOAT_NCHW, UINT8_NHWC
from dcgan_rt.pixels import to_uint8_nhwc

Runner = Callable[[Batch | np.ndarray], np.ndarray]  # a Batch (z and labels), or bare z


@dataclass(frozen=True)
class Bound:
    max_abs: float
    mean_abs: float | None = None
    unit: str = ""  # "" for [-1, 1] image values, "levels" for uint8 pixels

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        text = f"max ≤ {self.max_abs:g}{unit}"
        return text + (f", mean ≤ {self.mean_abs:g}{unit}" if self.mean_abs is not None else "")


BOUNDS = {
    ("fp32", FLOAT_NCHW): Bound(1e-4),
    ("fp16", FLOAT_NCHW): Bound(3e-2, 3e-3),
    ("fp32", UINT8_NHWC): Bound(1, unit="levels"),
    ("fp16", UINT8_NHWC): Bound(5, 1.5, unit="levels"),
}


@dataclass(frozen=True)
class ParityResult:
    variant: str
    backend: str
    max_abs: float
    mean_abs: float
    bound: Bound
    count: int  # images compared

    @property
    def passed(self) -> bool:
        if not (math.isfinite(self.max_abs) and math.isfinite(self.mean_abs)):
            return False
        if self.max_abs > self.bound.max_abs:
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


def errors(output: str, got: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max abs, mean abs) of `got` against the reference, in the output's units. The
    reference is float images (turned into pixels by the uint8 rule where needed) or,
    for a uint8 output, pixels already."""
    pixels = output == UINT8_NHWC and reference.dtype != np.uint8
    expected = to_uint8_nhwc(reference) if pixels else reference
    if got.shape != expected.shape:
        raise NumericalError(f"output shape {list(got.shape)}, expected {list(expected.shape)}")
    if output == UINT8_NHWC:
        if got.dtype != np.uint8:
            raise NumericalError(f"output dtype {got.dtype}, expected uint8")
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).astype(np.float64)
    else:
        if not np.isfinite(got).all():
            return math.nan, math.nan
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return float(diff.max()), float(diff.mean())


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
    max_abs, mean_abs = errors(output, np.concatenate(got), reference)
    return ParityResult(variant, backend, max_abs, mean_abs, BOUNDS[(precision, output)], len(batch))


def raise_on_failure(results: Sequence[ParityResult], seed: int) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        what = "; ".join(
            f"{r.variant} on {r.backend}: " + (
                f"max {r.max_abs:.3g}, mean {r.mean_abs:.3g} ({r.bound.describe()})"
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
