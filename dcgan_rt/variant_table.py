"""The export variants as one table: name, file suffix, precision, output, flags, parity bound.

Core tier (no numpy, no torch): the I/O contract (dcgan_rt.onnx_card), the engine
sidecar, `dcgan-rt export` and the parity check all read this table, so a precision
or output added here is known everywhere at once (as the Ultralytics exporter keeps
its formats). What differs between variants is a row, not a flag threaded through
functions.

A variant is asked for by its flags: `export --fp16 --uint8` writes every variant
whose flags are a subset of {fp16, uint8} (fp32, fp16, uint8, fp16-uint8); an
engine is built from the one variant whose flags are exactly the ones given.

Parity bounds (DESIGN §5, and §8 for int8), each against PyTorch fp32 on the same z:

| variant    | file                       | computes | output        | max            | mean / p99         |
| ---------- | -------------------------- | -------- | ------------- | -------------- | ------------------ |
| fp32       | generator.onnx             | fp32     | float32 NCHW  | 1e-4           | -                  |
| fp16       | generator.fp16.onnx        | fp16     | float32 NCHW  | 3e-2           | mean 3e-3          |
| uint8      | generator.uint8.onnx       | fp32     | uint8 NHWC    | 1 level        | -                  |
| fp16-uint8 | generator.fp16.uint8.onnx  | fp16     | uint8 NHWC    | 5 levels       | mean 1.5 levels    |
| int8       | generator.int8.onnx        | int8     | float32 NCHW  | 64 levels      | mean 2, p99 12 lvl |
| int8-uint8 | generator.int8.uint8.onnx  | int8     | uint8 NHWC    | 64 levels      | mean 2, p99 12 lvl |

fp16-uint8 is the fp16 bound in levels (x 127.5) plus a level of rounding. int8 is
compared in pixel levels whatever its output (a float output goes through the uint8
rule first): a high percentile says how far typical pixels move, the maximum how far
the worst pixel may; the numbers, and the image-quality bound they stand for, were
measured (docs/export.md).
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_NCHW = "float32-nchw"
UINT8_NHWC = "uint8-nhwc"
OUTPUTS = (FLOAT_NCHW, UINT8_NHWC)


@dataclass(frozen=True)
class Bound:
    """How far a variant may be from PyTorch fp32 on the same latents."""

    max_abs: float
    mean_abs: float | None = None
    unit: str = ""  # "" for [-1, 1] image values, "levels" for uint8 pixels
    p99: float | None = None  # 99th percentile of the absolute difference

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        text = f"max ≤ {self.max_abs:g}{unit}"
        if self.mean_abs is not None:
            text += f", mean ≤ {self.mean_abs:g}{unit}"
        if self.p99 is not None:
            text += f", p99 ≤ {self.p99:g}{unit}"
        return text


@dataclass(frozen=True)
class Variant:
    name: str  # "fp32", "fp16", "uint8", "fp16-uint8", "int8", "int8-uint8"
    suffix: str  # generator<suffix>.onnx
    precision: str  # what the graph computes in: "fp32", "fp16" or "int8"
    output: str  # FLOAT_NCHW or UINT8_NHWC
    flags: frozenset[str]  # the export options that ask for it (none: always written)
    bound: Bound

    @property
    def filename(self) -> str:
        return f"generator{self.suffix}.onnx"


_INT8_BOUND = Bound(64, 2, unit="levels", p99=12)  # measured: docs/export.md

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("fp32", "", "fp32", FLOAT_NCHW, frozenset(), Bound(1e-4)),
    Variant("fp16", ".fp16", "fp16", FLOAT_NCHW, frozenset({"fp16"}), Bound(3e-2, 3e-3)),
    Variant("uint8", ".uint8", "fp32", UINT8_NHWC, frozenset({"uint8"}), Bound(1, unit="levels")),
    Variant("fp16-uint8", ".fp16.uint8", "fp16", UINT8_NHWC, frozenset({"fp16", "uint8"}),
            Bound(5, 1.5, unit="levels")),
    Variant("int8", ".int8", "int8", FLOAT_NCHW, frozenset({"int8"}), _INT8_BOUND),
    Variant("int8-uint8", ".int8.uint8", "int8", UINT8_NHWC, frozenset({"int8", "uint8"}), _INT8_BOUND),
)}
PRECISIONS = tuple(dict.fromkeys(v.precision for v in VARIANTS.values()))  # ("fp32", "fp16", "int8")
# The export options and what each adds (the CLI's help text).
OPTIONS = {
    "fp16": "fp16 inside, float32 z in (generator.fp16.onnx); for GPUs",
    "uint8": "uint8 NHWC pixels out (generator.uint8.onnx), combined with each precision asked for",
    "int8": "static int8 in QDQ form, calibrated on z ~ N(0, I) (generator.int8.onnx); for CPUs and TensorRT",
}


def select_variants(options: set[str] | frozenset[str]) -> list[Variant]:
    """Every variant the options ask for, fp32 first: those whose flags are a subset of them."""
    _check_options(options)
    return [v for v in VARIANTS.values() if v.flags <= set(options)]


def engine_variant(options: set[str] | frozenset[str]) -> Variant | None:
    """The one variant an engine is built from (flags exactly the options), or None when the
    options combine precisions no single variant has (say fp16 and int8)."""
    _check_options(options)
    return next((v for v in VARIANTS.values() if v.flags == set(options)), None)


def variant_for(precision: str, output: str) -> Variant:
    """The variant that computes in `precision` and writes `output`."""
    for v in VARIANTS.values():
        if (v.precision, v.output) == (precision, output):
            return v
    raise KeyError(f"no variant computes in {precision!r} with output {output!r}")


def _check_options(options) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown export options {unknown}: choose from {sorted(OPTIONS)}")
