"""Peak memory of `dcgan-rt generate` is flat in the number of images (bounded queues).

Runs `dcgan-rt generate MODEL -n N --format npy` in a fresh process for each N and
reads that process's peak RSS from the kernel (os.wait4), then prints the ratio of
the largest run to the smallest: ~1.0 means memory does not grow with N.

    python benchmarks/bench_memory.py                       # 10,000 and 100,000 images
    python benchmarks/bench_memory.py --counts 10000,1000000  # the 1M case (a few GB of npy on disk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_onnx(folder: Path, img_resolution: int, img_channels: int, g_width: int) -> Path:
    import torch

    from dcgan_rt.config import ModelConfig
    from dcgan_rt.export.onnx_export import export_onnx
    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.train.networks import build_generator

    torch.manual_seed(0)
    cfg = ModelConfig(z_dim=100, img_resolution=img_resolution, img_channels=img_channels, g_width=g_width)
    return export_onnx(build_generator(cfg).eval(), ModelCard(cfg, dataset="random-init"), folder / "generator.onnx")


def peak_rss(cmd: list[str]) -> tuple[int, float]:
    """(peak RSS in bytes of this one child, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.read().decode()}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return usage.ru_maxrss * scale, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="an .onnx file [default: a random 32x32 RGB one]")
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--format", default="npy", choices=("npy", "tar", "png"))
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    exe = Path(sys.executable).with_name("dcgan-rt")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "dcgan_rt.cli.main"]
    with tempfile.TemporaryDirectory(prefix="dcgan-rt-mem-") as tmp:
        model = args.model or make_onnx(Path(tmp), 32, 3, 32)
        results = []
        for n in counts:
            out = Path(tmp) / f"out-{n}"
            rss, wall = peak_rss(cli + ["generate", str(model), "-n", str(n), "--out", str(out),
                                        "--format", args.format])
            results.append((n, rss, wall))
            print(f"{n:>9,} images ({args.format}): peak RSS {rss / 2**20:7.1f} MiB, {wall:6.1f} s, "
                  f"{n / wall:,.0f} images/s", flush=True)
            shutil.rmtree(out)
    (n0, r0, _), (n1, r1, _) = results[0], results[-1]
    print(f"peak RSS at {n1:,} images / at {n0:,} images = {r1 / r0:.2f} (1.00 = flat)")


if __name__ == "__main__":
    main()
