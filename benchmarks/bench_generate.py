"""`dcgan-rt generate` end to end against the naive loop, and the pipeline against model-only.

Run:  python benchmarks/bench_generate.py            (4,000 images, ~3 minutes on 2 cores)
      python benchmarks/bench_generate.py --quick    (2,000 images)
      python benchmarks/bench_generate.py --int8     (+ PNG from the `export --int8` file)

Model: the 64x64 RGB generator of width 64, ModelConfig(img_resolution=64,
img_channels=3, g_width=64) (209 MFLOP an image; the model the DCGAN seeds' naive
loop runs), random weights with BatchNorm statistics from a few training-mode passes
(speed does not depend on training). --resolution/--channels pick another size.
It is saved as a release (generator.safetensors + .json) and exported with the
real `dcgan-rt export` code, so `generate RUN_DIR` finds export/ as a user's would.

Measured side by side in one process, interleaved, best of --repeats rounds, by the
clock and in CPU seconds of this process (on a shared machine the CPU time is the
steadier figure; ratios from one run are what to compare, not absolute rates):

- naive: what the DCGAN seed scripts do: PyTorch eager, batch 64, torch.randn,
  and torchvision's save_image for each image inside the loop; with torch's default
  threads, and again with one thread (on a loaded machine torch's spinning OpenMP
  pool can be many times slower, which would flatter the ratio);
- generate png: dcgan_rt.pipeline.generate on the run directory, default options
  (--backend auto, --batch-size auto, --format png), everything included (model
  load, batch-size measurement, manifest, preview);
- model-only: the same backend called back to back on precomputed latents at the
  batch size generate picked (no latents, no encoding, no files);
- generate npy: the pipeline with --format npy, whose writers do almost nothing, so
  its ratio to model-only shows how much of the model's speed the pipeline keeps;
- the fp32 ceiling: the fastest float32 GEMM installed (numpy, ONNX Runtime, OpenVINO,
  torch: dcgan_rt.gemm_ceiling) over the generator's FLOPs, before and after the
  rounds (the faster counts).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def build_run(root: Path, resolution: int, channels: int, int8: bool = False):
    from dcgan_rt.config import ModelConfig
    from dcgan_rt.export.exporter import export_model
    from random_run import random_run

    cfg = ModelConfig(img_resolution=resolution, img_channels=channels, g_width=64)
    run = root / "run"
    random_run(cfg, run, dataset="benchmark")
    export_model(run, engine=False, options={"int8"} if int8 else ())  # auto keeps fp32; int8 is named
    return run, cfg


class Clock:
    """Wall and CPU time (all threads of this process) of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def naive(run: Path, out: Path, n: int, threads: int | None = None) -> Clock:
    """The seed scripts' loop (threads: torch's intra-op threads; None leaves its default)."""
    import torch
    from torchvision.utils import save_image

    from dcgan_rt.train.release import load_generator

    g, card = load_generator(run)
    out.mkdir()
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    with Clock() as clock, torch.no_grad():
        for i in range(0, n, 64):
            fake = g(torch.randn(min(64, n - i), card.model_config.z_dim))
            for j in range(fake.shape[0]):
                save_image(fake[j], out / f"{i + j}.png", normalize=True, value_range=(-1, 1))
    torch.set_num_threads(default_threads)
    return clock


def ours(run: Path, out: Path, n: int, fmt: str):
    from dcgan_rt.pipeline import GenerateRequest, generate

    with Clock() as clock:
        result = generate(GenerateRequest(model=run, out=out, n=n, format=fmt))
    return clock, result


def model_only(run: Path, n: int, batch: int) -> Clock:
    from dcgan_rt.backends import select_backend
    from dcgan_rt.latents import latent_range

    with select_backend(run) as backend:
        batches = [latent_range(0, i, min(batch, n - i), backend.z_dim) for i in range(0, n, batch)]
        backend.images(batches[0])
        with Clock() as clock:
            for _ in backend.map_images(batches):
                pass
        return clock


def main() -> None:
    from dcgan_rt.bench import generator_flops, matmul_ceiling

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4_000)
    parser.add_argument("--quick", action="store_true", help="2,000 images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--int8", action="store_true",
                        help="also export `--int8` and time generate --format png on generator.int8.onnx")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.n
    root = Path(tempfile.mkdtemp(prefix="dcgan-rt-bench-generate-"))
    try:
        run, cfg = build_run(root, args.resolution, args.channels, args.int8)
        flops = generator_flops(cfg)
        ceilings = [matmul_ceiling()]
        keys = ("naive", "naive1", "png", "model", "npy") + (("png_int8",) if args.int8 else ())
        wall = {k: float("inf") for k in keys}
        cpu = dict(wall)
        info = {}

        def keep(key: str, clock: Clock) -> None:
            wall[key], cpu[key] = min(wall[key], clock.wall), min(cpu[key], clock.cpu)

        for r in range(args.repeats):
            load = os.getloadavg()[0]
            keep("naive", naive(run, root / f"naive{r}", n))
            keep("naive1", naive(run, root / f"naive1-{r}", n, threads=1))
            clock, result = ours(run, root / f"png{r}", n, "png")
            keep("png", clock)
            info = {"backend": result.backend, "batch": result.batch_size}
            keep("model", model_only(run, n, result.batch_size))
            keep("npy", ours(run, root / f"npy{r}", n, "npy")[0])
            if args.int8:
                keep("png_int8", ours(run / "export" / "generator.int8.onnx", root / f"int8-{r}", n, "png")[0])
            print(f"round {r + 1}: load average before {load:.1f}; best so far " +
                  ", ".join(f"{k} {n / v:,.0f}/s" for k, v in wall.items()), flush=True)
            for d in root.glob("*[0-9]"):
                shutil.rmtree(d)
        ceilings.append(matmul_ceiling())
        best = max(ceilings, key=lambda c: c["flops_per_s"])
        ceiling = best["flops_per_s"] / flops
        rate = {k: n / v for k, v in wall.items()}
        per_k = {k: 1000 * v / n for k, v in cpu.items()}
        c, res = cfg.img_channels, cfg.img_resolution
        print(f"\n{n:,} images, {res}x{res} {'RGB' if c == 3 else 'grayscale'}, g_width {cfg.g_width} "
              f"({flops / 1e6:.1f} MFLOP an image); backend {info['backend']}, batch {info['batch']}; "
              f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.1f}")
        print(f"fp32 ceiling: {best['flops_per_s'] / 1e9:.0f} GFLOP/s, {best['source']} = {ceiling:,.0f} images/s "
              f"(by library, GFLOP/s: " + "; ".join(", ".join(f"{k} {v / 1e9:.0f}" for k, v in c["by_library"].items())
                                                     for c in ceilings) + ")")
        print(f"{'':50s}{'images/s':>10s}{'CPU s / 1000':>14s}")
        for key, label in (("naive", "naive loop (torch eager, batch 64, save_image)"),
                           ("naive1", "  the same with torch.set_num_threads(1)"),
                           ("png", "dcgan-rt generate --format png"), ("model", "model only (same backend and batch)"),
                           ("npy", "dcgan-rt generate --format npy"),
                           ("png_int8", "generate generator.int8.onnx --format png")):
            if key not in rate:
                continue
            print(f"{label:50s}{rate[key]:>10,.0f}{per_k[key]:>14.2f}")
        print(f"png vs naive: {rate['png'] / rate['naive']:.2f}x faster by the clock, "
              f"{cpu['naive'] / cpu['png']:.2f}x less CPU time (target >= 4.5x)")
        print(f"png vs the naive loop at its faster thread count: "
              f"{rate['png'] / max(rate['naive'], rate['naive1']):.2f}x by the clock")
        if args.int8:
            print(f"int8 png vs naive: {rate['png_int8'] / rate['naive']:.2f}x by the clock (fp32 png: "
                  f"{rate['png'] / rate['naive']:.2f}x)")
        print(f"npy vs model-only: {rate['npy'] / rate['model']:.0%}; npy vs the ceiling: "
              f"{rate['npy'] / ceiling:.0%} (target >= 90%); model-only vs the ceiling: {rate['model'] / ceiling:.0%}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
