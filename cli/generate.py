"""`dcgan-rt generate`: a reproducible, resumable image factory (the pipeline in dcgan_rt.pipeline).

CLI tier. Draws a rich progress bar on a terminal and prints plain periodic lines
otherwise (logs, CI), then a one-line summary. Imports only the core tier: with an
ONNX model this command never imports torch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from dcgan_rt.cli.common import console, handle_errors, human_bytes, is_tty

_PLAIN_EVERY_SECONDS = 5.0


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def make_reporter(tty: bool):
    """A pipeline Reporter: a rich bar on a terminal, a plain line every few seconds otherwise."""
    from dcgan_rt.pipeline import Reporter

    class CliReporter(Reporter):
        def __init__(self):
            self.progress = None
            self.task = None
            self.total = self.done0 = 0
            self.t0 = self.last = 0.0

        def info(self, message: str) -> None:
            console.print(message, highlight=False, soft_wrap=True, markup=False)

        def start(self, total: int, done: int, label: str) -> None:
            self.total, self.done0 = total, done
            self.t0 = self.last = time.perf_counter()
            if tty:
                from rich.progress import (
                    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
                )

                self.progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                    TimeElapsedColumn(), console=console,
                )
                self.progress.start()
                self.task = self.progress.add_task(label, total=total, completed=done, rate="")

        def label(self, label: str) -> None:
            if self.progress is not None:
                self.progress.update(self.task, description=label)

        def _rate(self, done: int) -> float:
            elapsed = time.perf_counter() - self.t0
            return (done - self.done0) / elapsed if elapsed > 0 else 0.0

        def advance(self, done: int) -> None:
            rate = self._rate(done)
            if self.progress is not None:
                self.progress.update(self.task, completed=done, rate=f"{rate:,.0f} images/s")
                return
            now = time.perf_counter()
            if now - self.last >= _PLAIN_EVERY_SECONDS and done < self.total:
                self.last = now
                eta = (self.total - done) / rate if rate > 0 else float("nan")
                console.print(
                    f"  {done:,}/{self.total:,} images ({100 * done / self.total:.0f}%), {rate:,.0f} images/s, "
                    f"ETA {_eta(eta) if eta == eta else '?'}", highlight=False, soft_wrap=True,
                )

        def stop(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return CliReporter()


@handle_errors
def generate(
    model: Annotated[str, typer.Argument(help="Run directory, generator.safetensors, .onnx or .engine file.",
                                         show_default=False)],
    n: Annotated[int, typer.Option("-n", "--num", help="Number of images in the job (all shards together).",
                                   show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (created; re-running resumes).",
                                      show_default=False)],
    seed: Annotated[int, typer.Option(help="Seed S: image i is G(z(S, i)), see docs/latents.md.")] = 0,
    start: Annotated[int, typer.Option(help="First image index (images start..start+n-1).")] = 0,
    batch_size: Annotated[str, typer.Option(help="Images per batch, or 'auto' to measure and pick.")] = "auto",
    backend: Annotated[str, typer.Option(help="auto | tensorrt | onnxruntime | openvino | torch.")] = "auto",
    format: Annotated[str, typer.Option("--format", help="png | npy | tar (WebDataset shards).")] = "png",
    shard: Annotated[Optional[str], typer.Option(help="K/N: write only the K-th of N slices.",
                                                 show_default="all of it; under torchrun RANK/WORLD_SIZE")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace another job's images in --out.",
                                                  show_default="off")] = False,
    save_latents: Annotated[bool, typer.Option("--save-latents", help="Also write each image's latent z.",
                                                     show_default="off")] = False,
    gpu: Annotated[Optional[int], typer.Option("--gpu", help="CUDA device number.",
                                               show_default="0; under torchrun LOCAL_RANK")] = None,
    label: Annotated[Optional[str], typer.Option(
        "--label", help="Conditional models: one class for every image (index or name, e.g. 7), or attribute "
                        "values (Smiling=1,Male=0) (docs/generate.md).",
        show_default="classes balanced (i mod K), attributes drawn from the training data's joint distribution")] = None,
    labels_file: Annotated[Optional[Path], typer.Option(
        "--labels-file", help="Conditional models: a CSV of index,label rows, one per image of the job "
                              "(generate's own labels.csv reads back as is).", show_default="none")] = None,
    layout: Annotated[str, typer.Option(
        "--layout", help="png: flat, or by-class (DIR/<class>/000000012.png, torchvision ImageFolder's layout).")
    ] = "flat",
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help="fp16: the torch backend on a CUDA GPU in half precision (recorded in the manifest).",
        show_default="fp32, or what an exported file holds")] = None,
) -> None:
    """Generate N images: reproducible (image i depends only on the model, seed and i) and resumable."""
    from dcgan_rt.api import generate as run_generate
    from dcgan_rt.cli.generate_args import parse_batch_size, parse_labels, parse_shard

    result = run_generate(model, n, out, seed=seed, start=start, batch_size=parse_batch_size(batch_size),
                          backend=backend, format=format, shard=parse_shard(shard), overwrite=overwrite,
                          save_latents=save_latents, gpu=gpu, precision=precision,
                          labels=parse_labels(label, labels_file), layout=layout, reporter=make_reporter(is_tty()))
    if result.generated:
        parts = [f"done: {result.generated:,} images in {result.seconds:.1f} s "
                 f"({result.images_per_second:,.0f} images/s), {human_bytes(result.bytes_written)} written"]
    else:
        parts = ["done: nothing new to make"]
    if result.skipped:
        parts.append(f"{result.skipped:,} were already there")
    if result.shard_images != result.job_images:
        parts.append(f"this shard: {result.shard_images:,} of {result.job_images:,}")
    if result.generated:
        parts.append(f"backend {result.backend}, batch {result.batch_size}")
    console.print("; ".join(parts), highlight=False, soft_wrap=True, markup=False)
    if result.complete:
        console.print(f"{result.job_images:,} images in {result.out} (manifest.json, preview.png)",
                      highlight=False, soft_wrap=True, markup=False)
