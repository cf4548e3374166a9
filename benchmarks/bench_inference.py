"""Model-only inference speed of the default 64x64 RGB generator against the measured ceiling.

Every CPU configuration the performance issue names, side by side in one run: PyTorch
eager and channels_last; ONNX Runtime with its defaults, with intra-op threads
(dcgan_rt.backends.ort_options) and with a batch slice per core (dcgan-rt's backend);
OpenVINO as it comes and with a stream per core (dcgan-rt's backend); the backends on
the plain export and on the sub-pixel rewrite (dcgan_rt.export.optimize). Shared
machines are noisy, so the script runs several rounds and measures the ceiling
(float32 matmul) right before every measurement; the table reports the median over
rounds of each share.
Also: startup times (`--help`, `info`, a one-image `generate`) and, with --profile,
where the time goes per layer.

    python benchmarks/bench_inference.py                 # CPU table -> benchmarks/README.md
    python benchmarks/bench_inference.py --profile       # per-layer times, ORT and OpenVINO
    python benchmarks/bench_inference.py --gpu           # GPU paths (TensorRT fp16, ORT CUDA, uint8...)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dcgan_rt.bench import generator_flops, machine_info, matmul_ceiling, summarize, time_calls
from dcgan_rt.config import ModelConfig
from dcgan_rt.latents import latent_range

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START, END = "<!-- bench_inference:start -->", "<!-- bench_inference:end -->"
DEFAULT_CFG = ModelConfig(z_dim=100, img_resolution=64, img_channels=3, g_width=64)
TARGET_SHARE = 0.85


def make_model(folder: Path) -> dict[str, Path]:
    """The default generator (DCGAN init, BatchNorm statistics from a few batches):
    a run directory, its plain ONNX export, and the sub-pixel rewrite of it."""
    import onnx

    from dcgan_rt.export.onnx_export import save_onnx, set_metadata, to_onnx_model
    from dcgan_rt.export.optimize import optimize_for_cpu
    from dcgan_rt.model_card import ModelCard
    from random_run import random_run

    run = folder / "run"
    g = random_run(DEFAULT_CFG, run)
    card = ModelCard(DEFAULT_CFG, dataset="random-init")
    plain = to_onnx_model(g)
    set_metadata(plain, card)
    if any(n.op_type != "ConvTranspose" and n.op_type in ("Conv", "DepthToSpace") for n in plain.graph.node):
        raise SystemExit("the exporter already rewrote the graph; export a plain one to compare")
    paths = {"run": run, "plain": folder / "plain.onnx", "subpixel": folder / "subpixel.onnx"}
    save_onnx(plain, paths["plain"])
    save_onnx(optimize_for_cpu(onnx.load(str(paths["plain"]))), paths["subpixel"])
    return paths


def cpu_configs(paths: dict[str, Path], threads: int) -> dict[str, callable]:
    """name -> a function that builds `run(z) -> output` for that configuration."""
    def torch_eager(channels_last: bool):
        def build():
            import torch

            from dcgan_rt.train.release import load_generator

            torch.set_num_threads(threads)
            g, _ = load_generator(paths["run"])
            if channels_last:
                g = g.to(memory_format=torch.channels_last)

            def run(z):
                with torch.inference_mode():
                    return g(torch.from_numpy(z)).numpy()
            return run
        return build

    def ort_session(path: Path, tuned: bool):
        def build():
            import onnxruntime

            from dcgan_rt.backends.ort_options import cpu_session_options

            options = cpu_session_options(onnxruntime, threads) if tuned else onnxruntime.SessionOptions()
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return lambda z: session.run(None, {"z": z})[0]
        return build

    def ort_backend(path: Path):
        def build():
            from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend

            return OnnxRuntimeBackend(path, providers="cpu", threads=threads)
        return build

    def openvino_latency(path: Path):
        def build():
            import openvino

            core = openvino.Core()
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            return lambda z: request.infer({0: z})[0]
        return build

    def openvino_backend(path: Path):
        def build():
            from dcgan_rt.backends.openvino import OpenVinoBackend

            return OpenVinoBackend(path, threads=threads)
        return build

    configs = {
        "PyTorch eager (NCHW)": torch_eager(False),
        "PyTorch channels_last": torch_eager(True),
        "ONNX Runtime, defaults": ort_session(paths["plain"], False),
        "ONNX Runtime, intra-op threads, no spinning": ort_session(paths["plain"], True),
        "ONNX Runtime, a batch slice per core (dcgan-rt backend)": ort_backend(paths["plain"]),
        "ONNX Runtime, a batch slice per core + sub-pixel graph": ort_backend(paths["subpixel"]),
        "OpenVINO, defaults (LATENCY hint)": openvino_latency(paths["plain"]),
        "OpenVINO, a stream per core (dcgan-rt backend)": openvino_backend(paths["plain"]),
        "OpenVINO, a stream per core + sub-pixel graph": openvino_backend(paths["subpixel"]),
    }
    return configs


def sweep(configs: dict, batch_sizes: list[int], rounds: int, warmup: int, repeats: int, log) -> dict:
    """Round after round: ceiling, then every configuration at every batch size."""
    flops = generator_flops(DEFAULT_CFG)
    runners = {}
    for name, build in configs.items():
        try:
            runners[name] = build()
        except Exception as exc:  # a runtime that is not installed: say so in the table
            log(f"skip {name}: {type(exc).__name__}: {exc}")
    zs = {b: latent_range(0, 0, b, DEFAULT_CFG.z_dim) for b in batch_sizes}
    rows: dict[tuple[str, int], list[dict]] = {}
    ceilings = []
    for r in range(rounds):
        for name, run in runners.items():
            for b in batch_sizes:
                # The ceiling is measured right before each measurement it is compared with,
                # so that load from other processes affects both about alike.
                ceiling = matmul_ceiling()
                ceilings.append(ceiling["flops_per_s"])
                stats = summarize(time_calls(lambda: run(zs[b]), warmup, repeats), b)  # noqa: B023
                stats["share"] = stats["images_per_s"] * flops / ceiling["flops_per_s"]
                rows.setdefault((name, b), []).append(stats)
        log(f"round {r + 1}/{rounds}: best share of the ceiling: " + ", ".join(
            f"{n} {rows[(n, max(batch_sizes, key=lambda b: rows[(n, b)][-1]['share']))][-1]['share']:.0%}"
            for n in runners))
    table = []
    for (name, b), stats in rows.items():
        table.append({
            "config": name, "batch_size": b,
            "images_per_s": float(np.median([s["images_per_s"] for s in stats])),
            "p50_ms": float(np.median([s["latency_ms"]["p50"] for s in stats])),
            "p99_ms": float(np.median([s["latency_ms"]["p99"] for s in stats])),
            "share": float(np.median([s["share"] for s in stats])),
            "share_per_round": [round(s["share"], 4) for s in stats],
        })
    return {"rows": table, "ceiling_flops_per_s": ceilings, "flops_per_image": flops, "rounds": rounds,
            "ceiling_source": ceiling["source"], "skipped": sorted(set(configs) - set(runners))}


def startup_times(paths: dict[str, Path], repeats: int = 5) -> dict:
    """Wall time of `dcgan-rt --help`, `dcgan-rt info` and a one-image `generate` from ONNX."""
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]

    def wall(args):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd + args, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    with tempfile.TemporaryDirectory() as tmp:
        first = []
        for i in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd + ["generate", str(paths["plain"]), "-n", "1", "--out", f"{tmp}/g{i}"],
                           check=True, capture_output=True)
            first.append(time.perf_counter() - start)
    return {"help_s": wall(["--help"]), "info_s": wall(["info", str(paths["plain"])]),
            "generate_one_image_s": float(np.median(first)), "repeats": repeats}


def profile(paths: dict[str, Path], batch: int, threads: int) -> None:
    """Per-node time of ONNX Runtime and OpenVINO on both graphs."""
    import onnxruntime

    from dcgan_rt.backends.ort_options import cpu_session_options

    z = latent_range(0, 0, batch, DEFAULT_CFG.z_dim)
    for label in ("plain", "subpixel"):
        options = cpu_session_options(onnxruntime, threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "dcgan-rt-ort-profile")
        session = onnxruntime.InferenceSession(str(paths[label]), options, providers=["CPUExecutionProvider"])
        for _ in range(12):
            session.run(None, {"z": z})
        trace = Path(session.end_profiling())
        per_node: dict[str, list[float]] = {}
        for event in json.loads(trace.read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                key = f"{event['args'].get('op_name', '?'):14s} {event['name'][:-len('_kernel_time')]}"
                per_node.setdefault(key, []).append(event["dur"] / 1e3)
        trace.unlink()
        print(f"\nONNX Runtime, {label} graph, batch {batch} (median ms per call):")
        _print_profile({k: float(np.median(v[2:])) for k, v in per_node.items()})
        try:
            import openvino
        except ImportError:
            continue
        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(paths[label])), "CPU",
                                      {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                       "PERF_COUNT": True})
        request = compiled.create_infer_request()
        samples: dict[str, list[float]] = {}
        for _ in range(12):
            request.infer({0: z})
            for p in request.profiling_info:
                samples.setdefault(f"{p.node_type:14s} {p.node_name} [{p.exec_type}]", []).append(
                    p.real_time.total_seconds() * 1e3)
        print(f"\nOpenVINO, {label} graph, batch {batch} (median ms per call):")
        _print_profile({k: float(np.median(v[2:])) for k, v in samples.items()})


def _print_profile(times: dict[str, float]) -> None:
    total = sum(times.values())
    for key, ms in times.items():
        if ms >= 0.05:
            print(f"  {ms:8.2f} ms  {ms / total:5.1%}  {key}")
    print(f"  {total:8.2f} ms  total")


def gpu(paths: dict[str, Path], out: Path, batch_sizes: list[int]) -> None:
    """Export every GPU artifact (fp32/fp16, uint8 output, TensorRT engine) and bench them."""
    from dcgan_rt.bench import run_bench
    from dcgan_rt.cli.bench import print_report
    from dcgan_rt.export.exporter import export_model

    export_model(paths["run"], options={"fp16", "uint8"}, engine=True, log=print)
    report = run_bench(paths["run"], ["tensorrt", "onnxruntime-cuda", "onnxruntime-tensorrt", "torch"],
                       batch_sizes, formats=("png", "npy"), generate_images=20_000, progress=print)
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    print_report(report)
    print(f"wrote {out}")


def markdown(result: dict, machine: dict, startup: dict | None, date: str, command: str) -> str:
    rows = sorted(result["rows"], key=lambda r: (list(dict.fromkeys(r2["config"] for r2 in result["rows"])).index(
        r["config"]), r["batch_size"]))
    ceiling = float(np.median(result["ceiling_flops_per_s"]))
    ceiling_img = ceiling / result["flops_per_image"]
    best_per_config = {}
    for r in rows:
        if r["config"] not in best_per_config or r["share"] > best_per_config[r["config"]]["share"]:
            best_per_config[r["config"]] = r
    best = max(best_per_config.values(), key=lambda r: r["share"])
    lines = [
        f"Measured {date} on {machine['cpu']} ({machine['usable_cores']} cores usable), "
        + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items()) + f". Command: `{command}`.",
        "",
        f"Ceiling: {ceiling / 1e9:.0f} GFLOP/s ({result['ceiling_source']}; median of "
        f"{len(result['ceiling_flops_per_s'])} measurements) / {result['flops_per_image'] / 1e6:.1f} MFLOP per "
        f"image = **{ceiling_img:.0f} images/s**. Each share below is the median over "
        f"{result['rounds']} rounds of images/s / the ceiling measured right before it.",
        "",
        f"**Best CPU configuration: {best['config']}, batch {best['batch_size']}: {best['images_per_s']:.0f} images/s, "
        f"{best['share']:.0%} of the ceiling** (target {TARGET_SHARE:.0%}: "
        f"{'met' if best['share'] >= TARGET_SHARE else 'not met'}).",
        "",
        "| configuration | batch | images/s | p50 ms | p99 ms | share of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mark = "**" if r is best_per_config[r["config"]] else ""
        lines.append(f"| {r['config']} | {r['batch_size']} | {mark}{r['images_per_s']:.0f}{mark} | {r['p50_ms']:.1f} "
                     f"| {r['p99_ms']:.1f} | {mark}{r['share']:.0%}{mark} |")
    if result["skipped"]:
        lines += ["", "Not installed here, so not measured: " + ", ".join(result["skipped"]) + "."]
    if startup:
        lines += ["", "| startup (median wall, new process) | seconds | target |", "| --- | ---: | ---: |",
                  f"| `dcgan-rt --help` | {startup['help_s']:.2f} | 0.5 |",
                  f"| `dcgan-rt info generator.onnx` | {startup['info_s']:.2f} | 0.5 |",
                  f"| `dcgan-rt generate generator.onnx -n 1` (whole run: an upper bound on the first image) "
                  f"| {startup['generate_one_image_s']:.2f} | 1.5 |"]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: f"{START}\n{section}\n{END}", text, flags=re.S)
    README.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,32,64,128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="[default: every usable core]")
    parser.add_argument("--only", default=None, help="comma-separated substrings of configuration names to run")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--profile", action="store_true", help="print per-layer times and exit")
    parser.add_argument("--gpu", action="store_true", help="export and bench the GPU paths (needs a CUDA GPU)")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    command = "python benchmarks/bench_inference.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-bench-") as tmp:
        paths = make_model(Path(tmp))
        if args.profile:
            profile(paths, max(batch_sizes), threads)
            return
        if args.gpu:
            gpu(paths, args.json or HERE / "gpu_results.json", batch_sizes)
            return
        configs = cpu_configs(paths, threads)
        if args.only:
            keys = [k.strip().lower() for k in args.only.split(",")]
            configs = {n: b for n, b in configs.items() if any(k in n.lower() for k in keys)}
        result = sweep(configs, batch_sizes, args.rounds, args.warmup, args.repeats, lambda m: print(m, flush=True))
        startup = startup_times(paths)
    machine = machine_info()
    date = datetime.date.today().isoformat()
    section = markdown(result, machine, startup, date, command.strip())
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"date": date, "machine": machine, **result, "startup": startup}, indent=2))
    if not args.no_readme:
        write_readme(section)
        print(f"\nupdated {README}")


if __name__ == "__main__":
    main()
