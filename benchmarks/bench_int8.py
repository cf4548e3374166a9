"""int8 against fp32: speed on the CPU (model-only, against two ceilings) and image quality.

    python benchmarks/bench_int8.py speed                  # default 64x64 RGB generator, this CPU
    python benchmarks/bench_int8.py quality RUN_DIR        # digit scores and FID, fp32 vs int8
    python benchmarks/bench_int8.py parity RUN_DIR ...     # pixel differences int8 vs PyTorch fp32

speed: the default generator (DCGAN init; the weights do not change the work) is
exported as `dcgan-rt export --int8` writes it; in several rounds the script measures
the fp32 ceiling (the fastest float32 GEMM installed: dcgan_rt.gemm_ceiling) and each
runtime's own int8 GEMM rate (an int8 QDQ MatMul, dcgan_rt.gemm_ceiling.int8_gemm_rates)
once per round, right before timing fp32 and int8 through the very backends `generate` uses (ONNX
Runtime: a batch slice per core; OpenVINO). Targets (issue 16): int8 >= 1.3x the fp32
ceiling, and >= 75 % of the int8 GEMM rate of the runtime that runs it, each as
images/s x FLOPs per image over the rate measured in the same round. The median over
rounds is reported.

quality: the run's fp32 and int8 ONNX files, each scored by `dcgan-rt evaluate`
(digit classifier on 10,000 images; FID on 250 vs 250) at several latent seeds: the
spread of fp32 over seeds is the run-to-run noise int8 is compared with.

parity: max / 99th / 99.9th percentile of |int8 - fp32| in pixel levels on 1,024
latents, for each model given, on ONNX Runtime and OpenVINO: what the bounds in
dcgan_rt.variant_table were chosen from.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from dcgan_rt.bench import generator_flops, matmul_ceiling, time_calls
from dcgan_rt.config import ModelConfig
from dcgan_rt.latents import latent_range

DEFAULT_CFG = ModelConfig(z_dim=100, img_resolution=64, img_channels=3, g_width=64)
TARGET_VS_FP32_CEILING = 1.3
TARGET_VS_INT8_GEMM = 0.75


def export(run: Path, out: Path, log=lambda _m: None) -> dict[str, Path]:
    from dcgan_rt.export.variants import VARIANTS, export_variants
    from dcgan_rt.train.release import load_generator

    g, card = load_generator(run)
    out.mkdir(parents=True, exist_ok=True)
    return export_variants(g, card, [VARIANTS["fp32"], VARIANTS["int8"]], out, log=log)


def default_run(folder: Path) -> Path:
    from random_run import random_run

    run = folder / "run"
    random_run(DEFAULT_CFG, run)
    return run


def speed(args) -> None:
    from dcgan_rt.backends import select_backend
    from dcgan_rt.gemm_ceiling import int8_gemm_rates

    flops = generator_flops(DEFAULT_CFG)
    with tempfile.TemporaryDirectory() as tmp:
        paths = export(default_run(Path(tmp)), Path(tmp) / "export", print)
        rows: dict[tuple[str, str, int], list[tuple[float, float, float]]] = {}
        for r in range(args.rounds):
            fp32_rate = matmul_ceiling()["flops_per_s"]  # both ceilings once per round, right before it
            int8_rates = {rt: v["ops_per_s"] for rt, v in int8_gemm_rates().items()}
            for backend in args.backends:
                for name in ("fp32", "int8"):
                    try:
                        b = select_backend(paths[name], backend)
                    except Exception as exc:  # noqa: BLE001 - report and go on
                        print(f"{backend} {name}: cannot run ({exc})")
                        continue
                    with b:
                        for bs in args.batch_sizes:
                            z = latent_range(0, 0, bs, DEFAULT_CFG.z_dim)
                            int8_rate = int8_rates[backend]
                            ips = bs / float(np.median(time_calls(lambda: b(z), 3, args.repeats)))  # noqa: B023
                            rows.setdefault((backend, name, bs), []).append(
                                (ips, ips * flops / fp32_rate, ips * flops / int8_rate))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for _ in range(3):
        fp32, int8 = matmul_ceiling(), int8_gemm_rates()
        print(f"fp32 ceiling {fp32['flops_per_s'] / 1e9:.0f} GFLOP/s ({fp32['library']}; by library: "
              + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in fp32["by_library"].items()) + "); int8 GEMM GOP/s: "
              + "; ".join(f"{rt} " + ", ".join(f"{a} {v / 1e9:.0f}" for a, v in r["by_activation"].items())
                          for rt, r in int8.items()))
    print(f"{'backend':<12} {'model':<5} {'batch':>5} {'images/s':>9} {'x fp32 ceiling':>15} {'of int8 GEMM':>13}")
    summary = []
    for (backend, name, bs), vals in rows.items():
        ips, vs_fp32, vs_int8 = (statistics.median(v) for v in zip(*vals))
        print(f"{backend:<12} {name:<5} {bs:>5} {ips:>9.0f} {vs_fp32:>14.2f}x {vs_int8:>12.0%}")
        summary.append({"backend": backend, "model": name, "batch": bs, "images_per_s": ips,
                        "x_fp32_ceiling": vs_fp32, "share_of_int8_gemm": vs_int8, "rounds": len(vals)})
    best = max((s for s in summary if s["model"] == "int8"), key=lambda s: s["x_fp32_ceiling"], default=None)
    if best:
        print(f"\nbest int8: {best['backend']} batch {best['batch']}: {best['x_fp32_ceiling']:.2f}x the fp32 ceiling "
              f"(target {TARGET_VS_FP32_CEILING}x), {best['share_of_int8_gemm']:.0%} of the int8 GEMM rate "
              f"(target {TARGET_VS_INT8_GEMM:.0%})")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def quality(args) -> None:
    from dcgan_rt.train.evaluation import evaluate_model

    with tempfile.TemporaryDirectory() as tmp:
        paths = export(Path(args.run), Path(tmp), print)
        scores = {}
        for name in ("fp32", "int8"):
            for seed in args.seeds:
                digits = evaluate_model(paths[name], "mnist-5k", args.n, seed=seed, metrics="digits",
                                        backend="onnxruntime").to_dict()
                row = {"recognised": digits["digits"]["recognised"], "digit_fd": digits["digit_fd"]}
                if args.fid_n:
                    fid = evaluate_model(paths[name], "mnist-5k", args.fid_n, num_real=args.fid_n, seed=seed,
                                         metrics="fid", backend="onnxruntime").to_dict()
                    row["fid"] = fid["fid"]
                scores[(name, seed)] = row
                print(name, seed, row, flush=True)
    print(f"\n{'model':<5} {'seed':>4} {'recognised':>10} {'digit FD':>9} {'FID':>7}")
    for (name, seed), row in scores.items():
        print(f"{name:<5} {seed:>4} {row['recognised']:>10.2%} {row['digit_fd']:>9.3f} {row.get('fid', float('nan')):>7.2f}")
    for metric in ("recognised", "digit_fd", "fid"):
        fp32 = [scores[("fp32", s)].get(metric) for s in args.seeds]
        int8 = [scores[("int8", s)].get(metric) for s in args.seeds]
        if None in fp32:
            continue
        paired = [b - a for a, b in zip(fp32, int8)]
        print(f"{metric}: fp32 over seeds {min(fp32):.4g} .. {max(fp32):.4g} (spread {max(fp32) - min(fp32):.3g}); "
              f"int8 - fp32 at the same seed: {', '.join(f'{d:+.3g}' for d in paired)}")


def parity(args) -> None:
    from dcgan_rt.backends import select_backend
    from dcgan_rt.export.parity import abs_difference, reference_images
    from dcgan_rt.train.release import load_generator

    for run in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            paths = export(Path(run), Path(tmp))
            g, card = load_generator(run)
            z = latent_range(3, 0, 1024, card.model_config.z_dim)
            reference = reference_images(g, z)
            for backend in args.backends:
                with select_backend(paths["int8"], backend) as b:
                    diff = abs_difference("float32-nchw", b(z), reference, levels=True)
                print(f"{Path(run).name} {backend}: {level_summary(diff)}; "
                      f"{(diff == 0).mean():.0%} of pixels identical to PyTorch fp32")


def level_summary(diff: np.ndarray) -> str:
    """|int8 - fp32| in pixel levels as the int8 bounds read it."""
    return (f"max {diff.max():.0f}, p99.9 {np.percentile(diff, 99.9):.0f}, "
            f"p99 {np.percentile(diff, 99):.0f}, mean {diff.mean():.2f} levels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--batch-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[64, 128, 256])
    s.add_argument("--backends", type=lambda t: t.split(","), default=["onnxruntime", "openvino"])
    s.add_argument("--json")
    q = sub.add_parser("quality")
    q.add_argument("run")
    q.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1, 2])
    q.add_argument("-n", type=int, default=10_000)
    q.add_argument("--fid-n", type=int, default=250, help="images for FID (0: skip FID)")
    p = sub.add_parser("parity")
    p.add_argument("runs", nargs="+")
    p.add_argument("--backends", type=lambda t: t.split(","), default=["onnxruntime", "openvino"])
    args = parser.parse_args()
    {"speed": speed, "quality": quality, "parity": parity}[args.cmd](args)


if __name__ == "__main__":
    main()
