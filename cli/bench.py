"""`dcgan-rt bench MODEL`: throughput and latency per backend and batch size, against the ceiling.

CLI tier: parses options, calls dcgan_rt.bench.run_bench, prints rich tables (or
the same data as JSON with --json). Progress goes to stderr so --json stays clean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from dcgan_rt.cli.common import console, err_console, handle_errors


@handle_errors
def bench(
    model: Annotated[Path, typer.Argument(help="Run directory, generator.safetensors, .onnx or .engine; the "
                                               "variants 'dcgan-rt export' wrote beside it are benchmarked too.",
                                          show_default=False)],
    backend: Annotated[str, typer.Option("--backend", help="Comma-separated backends to time, or 'all': "
                                         "onnxruntime, openvino, torch, onnxruntime-cuda, onnxruntime-tensorrt, "
                                         "tensorrt.")] = "all",
    batch_size: Annotated[str, typer.Option("--batch-size", help="Comma-separated batch sizes.")] = "1,8,32,64,128",
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls per batch size.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats",
                                         help="Timed calls per batch size (the median is reported).")] = 10,
    formats: Annotated[str, typer.Option("--formats", help="Output formats for the end-to-end generate run, "
                                         "or 'none'.")] = "png,npy,tar",
    images: Annotated[int, typer.Option("--images", help="Images per end-to-end generate run.")] = 2048,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for CPU backends.",
                                                   show_default="every usable core")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON (for machines).", show_default="off")] = False,
) -> None:
    """Measure model-only throughput (images/s, p50/p99 latency), end-to-end generate speed, and the ceiling."""
    from dcgan_rt.bench import BENCH_BACKENDS, parse_batch_sizes, parse_list, run_bench
    from dcgan_rt.errors import UsageError
    from dcgan_rt.writers import check_format

    backends = None if backend.strip() == "all" else parse_list(backend, "--backend")
    if backends:
        unknown = [b for b in backends if b not in BENCH_BACKENDS]
        if unknown:
            raise UsageError(f"unknown --backend {', '.join(unknown)}: choose from all, {', '.join(BENCH_BACKENDS)}")
    fmts = [] if formats.strip() == "none" else [check_format(f) for f in parse_list(formats, "--formats")]
    if images < 1 and fmts:
        raise UsageError("--images must be >= 1 (or pass --formats none)")
    if threads is not None and threads < 1:
        raise UsageError("--threads must be >= 1")

    def progress(message: str) -> None:
        err_console.print(f"[dim]{message}...[/]", highlight=False)

    report = run_bench(model, backends, parse_batch_sizes(batch_size), warmup=warmup, repeats=repeats,
                       formats=fmts, generate_images=images,
                       threads=threads, progress=progress)
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    print_report(report)


def print_report(report: dict) -> None:
    from dcgan_rt.onnx_card import UINT8_NHWC

    m, machine, ceiling = report["model"], report["machine"], report["ceiling"]
    cpu = ceiling["cpu"]
    gpu_name = (machine.get("gpu") or {}).get("name")
    console.print(f"[bold]machine[/]: {machine['cpu']}, {machine['usable_cores']} of {machine['cores']} cores usable"
                  + (f", GPU {gpu_name}" if gpu_name else ", no GPU")
                  + "; " + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items()), highlight=False)
    console.print(f"[bold]model[/]: {m['path']} {m['config']}; {m['flops_per_image'] / 1e6:.1f} MFLOP/image "
                  f"({m['flops_method']})", highlight=False)
    others = ", ".join(f"{lib} {rate / 1e9:.0f}" for lib, rate in cpu.get("by_library", {}).items())
    console.print(f"[bold]ceiling[/]: {cpu['flops_per_s'] / 1e9:.1f} GFLOP/s ({cpu['source']}) = "
                  f"[bold]{cpu['images_per_s']:.0f} images/s[/] on the CPU"
                  + (f"; float32 GEMM GFLOP/s by library: {others}" if others else ""), highlight=False)
    for runtime, int8 in sorted(ceiling.get("cpu_int8", {}).items()):
        console.print(f"[bold]int8 GEMM, {runtime}[/]: {int8['ops_per_s'] / 1e9:.1f} GOP/s ({int8['source']}) = "
                      f"{int8['images_per_s']:.0f} images/s, {int8['ops_per_s'] / cpu['flops_per_s']:.2f}x the fp32 "
                      "ceiling", highlight=False)
    if "gpu" in ceiling:
        gpu = ceiling["gpu"]
        rates = ", ".join(f"{p} {r / 1e12:.1f} TFLOP/s = {gpu['images_per_s'][p]:.0f} images/s"
                          for p, r in gpu["flops_per_s"].items())
        console.print(f"[bold]GPU ceiling[/]: {rates} ({gpu['source']})", highlight=False)
    best = {(r["backend"], r["model"], r["batch_size"]) for r in report["best"]}
    table = Table(title="model-only (median of timed calls)", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("backend", "model", "precision", "batch", "images/s", "p50 ms", "p99 ms",
                "ceiling" if "cpu_int8" not in ceiling else "ceiling / own int8 GEMM (i8)"):
        table.add_column(col, justify="left" if col in ("backend", "model", "precision") else "right", no_wrap=True)
    for r in report["results"]:
        star = (r["backend"], r["model"], r["batch_size"]) in best
        rate = f"{r['images_per_s']:,.0f}"
        if "pipelined_images_per_s" in r:
            rate += f" ({r['pipelined_images_per_s']:,.0f} pipelined)"
        precision = r["precision"] + (" -> uint8" if r["output"] == UINT8_NHWC else "")
        table.add_row(r["backend"], r["model"], precision, str(r["batch_size"]),
                      f"[bold]{rate}[/]" if star else rate, f"{r['latency_ms']['p50']:.2f}",
                      f"{r['latency_ms']['p99']:.2f}", f"{r['ceiling_share']:.0%}"
                      + (f" / {r['int8_gemm_share']:.0%} i8" if "int8_gemm_share" in r else ""))
    console.print(table)
    if report["generate"]:
        gen = Table(title="end-to-end dcgan-rt generate", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("format", "backend", "batch", "images", "images/s"):
            gen.add_column(col, justify="left" if col in ("format", "backend") else "right", no_wrap=True)
        for g in report["generate"]:
            gen.add_row(g["format"], g["backend"], str(g["batch_size"]), str(g["images"]), f"{g['images_per_s']:,.0f}")
        console.print(gen)
    skipped: dict[tuple[str, str], list[str]] = {}
    for s in report["skipped"]:
        skipped.setdefault((s["backend"], s["reason"]), []).append(Path(s["path"]).name)
    for (name, reason), files in skipped.items():
        console.print(f"skipped {name} ({', '.join(files)}): {reason}", style="yellow", markup=False,
                      highlight=False, soft_wrap=True)
