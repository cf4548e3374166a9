"""`dcgan-rt export MODEL`: ONNX (+ fp16 / uint8 variants) and a TensorRT engine, parity-checked.

CLI tier: parses options, calls dcgan_rt.export.exporter.export_model, prints the
parity table and the files written. torch and friends are imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from dcgan_rt.cli.common import console, handle_errors
from dcgan_rt.errors import NumericalError


def _num(v: float, unit: str) -> str:
    if v != v:  # NaN: the backend produced non-finite values
        return "nan"
    if unit:
        return f"{v:.3g} lvl" if v == 0 or v >= 0.01 else f"{v:.1e} lvl".replace("e-0", "e-")
    return "0" if v == 0 else f"{v:.2e}".replace("e-0", "e-")


def _bound(b) -> str:
    fmt = (lambda v: f"{v:g}") if b.unit else (lambda v: f"{v:.0e}".replace("e-0", "e-"))
    text = fmt(b.max_abs) + (f" / {fmt(b.mean_abs)}" if b.mean_abs is not None else "")
    return f"{text} lvl" if b.unit else text


def parity_table(results, title: str) -> Table:
    """variant | backend | max err | mean err | bound (max / mean) | result"""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("variant", "backend", "max err", "mean err", "bound", "result"):
        table.add_column(col, justify="right" if "err" in col else "left", no_wrap=True)
    for r in results:
        table.add_row(
            r.variant, r.backend, _num(r.max_abs, r.bound.unit), _num(r.mean_abs, r.bound.unit), _bound(r.bound),
            "[green]pass[/]" if r.passed else "[bold red]FAIL[/]",
        )
    return table


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="Run directory or generator.safetensors (generator.json beside it).",
                                          show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", help="Output directory.",
                                                show_default="MODEL's folder/export")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write generator.fp16.onnx (fp16 inside, float32 z in); "
                                                      "the engine is built from it.", show_default="off")] = False,
    uint8: Annotated[bool, typer.Option("--uint8", help="Also write generator.uint8.onnx (uint8 NHWC pixels out); "
                                                        "with --fp16 also generator.fp16.uint8.onnx.",
                                                show_default="off")] = False,
    engine: Annotated[Optional[bool], typer.Option("--engine/--no-engine",
                                                   help="Force / skip the TensorRT engine.",
                                                   show_default="build where TensorRT and a GPU are present")] = None,
    max_batch: Annotated[Optional[int], typer.Option("--max-batch", help="Largest batch the engine accepts "
                                                     "(its optimization profile is 1..N).", show_default="1024")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset to write (17 or newer).",
                                                 show_default="18")] = None,
) -> None:
    """Export a trained generator to ONNX (and TensorRT), checking every artifact against PyTorch."""
    from dcgan_rt.api import export as export_model  # checks the arguments before importing torch

    def log(msg: str) -> None:
        console.print(msg, style="dim", markup=False, highlight=False)

    try:
        report = export_model(model, out, fp16=fp16, uint8=uint8, engine=engine, max_batch=max_batch, opset=opset,
                              log=log)
    except NumericalError as exc:
        if getattr(exc, "results", None):
            console.print(parity_table(exc.results, f"parity vs PyTorch fp32 (latent seed {exc.seed})"))
        raise
    console.print(parity_table(report.results, f"parity vs PyTorch fp32 (latent seed {report.seed}, "
                                               f"{report.results[0].count} images)"))
    for path in report.files:
        console.print(f"wrote {path} ({_size(path.stat().st_size)})", markup=False, highlight=False, soft_wrap=True)
    if report.no_engine_reason:
        console.print(f"no TensorRT engine built: {report.no_engine_reason}", markup=False, highlight=False,
                      soft_wrap=True)
