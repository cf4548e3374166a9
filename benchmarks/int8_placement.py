"""Where the int8 file's Q/DQ pairs go, and whether the last layer is int8: speed and pixels.

Run:  python benchmarks/int8_placement.py speed [--rounds 3]   # default 64x64 RGB generator
      python benchmarks/int8_placement.py parity RUN_DIR         # a trained run's pixels

Five ways to quantize the same CPU-optimized fp32 graph (dcgan_rt.export.optimize)
with ONNX Runtime's quantize_static, calibrated as `export --int8` calibrates
(dcgan_rt.export.quantize: percentile ranges, int8 symmetric activations, 7-bit
per-channel weights):

- `float-pixels`: what `export --int8` writes (dcgan_rt.export.quantize.quantize_int8):
  every tensor ONNX Runtime quantizes by default (convolution outputs, the ReLUs, the
  concatenations) has a Q/DQ pair, every convolution is int8, and from the last
  convolution's output on the pairs are taken out (`float_pixels`): the pixels stay float;
- `last-layer-float`: the previous default: the same, but the last layer (the
  convolution that writes the image channels, and what follows it) excluded from
  quantization;
- `all-int8`: Q/DQ pairs everywhere, the pixels included;
- `inputs-only`: Q/DQ only where a Conv or Gemm reads an activation
  (op_types_to_quantize Conv/Gemm, OpTypesToExcludeOutputQuantization Conv/Gemm):
  TensorRT's recommended placement, the fewest pairs; last layer float;
- `inputs-only-all-int8`: the same with the last layer int8.

`speed` times each on OpenVINO and ONNX Runtime through the backends `generate` uses
(batch 256, median of 10 calls, best round's median over --rounds) against each
runtime's own int8 GEMM measured in the same round (dcgan_rt.gemm_ceiling) — the issue-16
target is 75 %. `parity` compares each with the run's PyTorch fp32 generator on 1,024
latents, in pixel levels (the int8 bounds: p99 <= 12, mean <= 2, max <= 64).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import statistics
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

PLACEMENTS = {  # name: (Conv/Gemm inputs only?, last layer and pixels excluded?); float-pixels: the exporter's own
    "float-pixels": None,
    "last-layer-float": (False, True),
    "all-int8": (False, False),
    "inputs-only": (True, True),
    "inputs-only-all-int8": (True, False),
}


def build(run: Path, out: Path) -> dict[str, Path]:
    """{placement: int8 ONNX file} (and "fp32") of the run's generator, written into out."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from dcgan_rt.export import quantize as q
    from dcgan_rt.export.onnx_export import set_metadata, to_onnx_model
    from dcgan_rt.export.optimize import optimize_for_cpu
    from dcgan_rt.export.variants import VARIANTS, variant_module
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(run)
    fp32 = optimize_for_cpu(to_onnx_model(variant_module(g, VARIANTS["fp32"])))
    set_metadata(fp32, card)
    paths = {"fp32": out / "fp32.onnx"}
    onnx.save(fp32, str(paths["fp32"]))
    calibration = q.Calibration()
    layer = q.last_layer_nodes(fp32)
    float_part = layer + q.downstream_of(fp32.graph, layer)[1]
    for name, placement in PLACEMENTS.items():
        dst = out / f"{name}.onnx"
        if placement is None:
            model, _ = q.quantize_int8(fp32, card.model_config.z_dim, card=card)
        else:
            inputs_only, exclude = placement
            extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibMaxIntermediateOutputs": 2}
            kwargs = {}
            if inputs_only:
                extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "Gemm"]
                kwargs["op_types_to_quantize"] = ["Conv", "Gemm"]
            with contextlib.redirect_stdout(io.StringIO()), q.quiet_root_logger():
                quantize_static(str(paths["fp32"]), str(dst), q.LatentReader(card.model_config.z_dim, calibration, card),
                                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                                calibrate_method=CalibrationMethod.Percentile,
                                nodes_to_exclude=float_part if exclude else [], extra_options=extra, **kwargs)
            model = onnx.load(str(dst))
        set_metadata(model, dataclasses.replace(card, precision="int8"), precision="int8")
        onnx.save(model, str(dst))
        paths[name] = dst
    return paths


def speed(args) -> None:
    from bench_int8 import DEFAULT_CFG, default_run

    from dcgan_rt.backends import select_backend
    from dcgan_rt.bench import generator_flops
    from dcgan_rt.gemm_ceiling import int8_gemm_rates, time_calls
    from dcgan_rt.latents import latent_range

    flops = generator_flops(DEFAULT_CFG)
    z = latent_range(0, 0, 256, DEFAULT_CFG.z_dim)
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(default_run(Path(tmp)), Path(tmp))
        for _ in range(args.rounds):
            rates = {rt: v["ops_per_s"] for rt, v in int8_gemm_rates().items()}
            for backend in ("openvino", "onnxruntime"):
                for name in PLACEMENTS:
                    with select_backend(paths[name], backend) as b:
                        times = time_calls(lambda: b(z), 3, 10)  # noqa: B023
                    ips = len(z) / statistics.median(times)
                    rows.setdefault((backend, name), []).append((ips, ips * flops / rates[backend]))
    print(f"{'backend':<12} {'placement':<22} {'images/s':>9} {'of own int8 GEMM':>17}")
    for (backend, name), vals in rows.items():
        ips, share = max(vals)
        print(f"{backend:<12} {name:<22} {ips:>9.0f} {share:>16.0%}")


def parity(args) -> None:
    from bench_int8 import level_summary

    from dcgan_rt.backends import select_backend
    from dcgan_rt.export.parity import abs_difference, reference_images
    from dcgan_rt.latents import latent_range
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(args.run)
    z = latent_range(3, 0, 1024, card.model_config.z_dim)
    reference = reference_images(g, z)
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(args.run), Path(tmp))
        for name in PLACEMENTS:
            with select_backend(paths[name], "openvino") as b:
                diff = abs_difference("float32-nchw", b(z), reference, levels=True)
            print(f"{name:<22} {level_summary(diff)} (OpenVINO)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--rounds", type=int, default=3)
    p = sub.add_parser("parity")
    p.add_argument("run")
    args = parser.parse_args()
    {"speed": speed, "parity": parity}[args.cmd](args)


if __name__ == "__main__":
    main()
