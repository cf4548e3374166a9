"""`dcgan-rt export MODEL`: ONNX (+ fp16 / int8 / uint8 variants) and a TensorRT engine, parity-checked.

CLI tier: parses options, calls dcgan_rt.export.exporter.export_model, prints the
parity table and the files written. torch and friends are imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from dcgan_rt.cli.common import console, handle_errors, human_bytes
from dcgan_rt.errors import NumericalError
from dcgan_rt.variant_table import OPTIONS


def _num(v: float, unit: str) -> str:
    if v != v:  # NaN: the backend produced non-finite values
        return "nan"
    if unit:  # pixel levels (the bound column names the unit)
        return f"{v:.3g}" if v == 0 or v >= 0.01 else f"{v:.1e}".replace("e-0", "e-")
    return "0" if v == 0 else f"{v:.2e}".replace("e-0", "e-")


def _bound(b) -> str:
    fmt = (lambda v: f"{v:g}") if b.unit else (lambda v: f"{v:.0e}".replace("e-0", "e-"))
    text = fmt(b.max_abs) + (f" / {fmt(b.mean_abs)}" if b.mean_abs is not None else "")
    text += f" / p99 {fmt(b.p99)}" if b.p99 is not None else ""
    return f"{text} lvl" if b.unit else text


def parity_table(results, title: str) -> Table:
    """variant | backend | max err | mean err | (p99) | bound (max / mean / p99) | result; the p99
    column only where a bound has a percentile (int8)."""
    percentiles = any(r.bound.p99 is not None for r in results)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  collapse_padding=True)  # fits 80 columns with the int8 rows
    columns = ("variant", "backend", "max err", "mean err", *(("p99",) if percentiles else ()), "bound", "result")
    for col in columns:
        table.add_column(col, justify="right" if "err" in col or col == "p99" else "left", no_wrap=True)
    for r in results:
        p99 = (_num(r.p99, r.bound.unit) if r.bound.p99 is not None else "-",) if percentiles else ()
        table.add_row(
            r.variant, r.backend, _num(r.max_abs, r.bound.unit), _num(r.mean_abs, r.bound.unit), *p99,
            _bound(r.bound), "[green]pass[/]" if r.passed else "[bold red]FAIL[/]",
        )
    return table


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="Run directory or generator.safetensors (generator.json beside it).",
                                          show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", help="Output directory.",
                                                show_default="MODEL's folder/export")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help=f"Also write the {OPTIONS['fp16']}; "
                                                      "the engine is built from it.", show_default="off")] = False,
    uint8: Annotated[bool, typer.Option("--uint8", help=f"Also write {OPTIONS['uint8']}.", show_default="off")] = False,
    int8: Annotated[bool, typer.Option("--int8", help=f"Also write the {OPTIONS['int8']}; "
                                                      "the engine is built from it.", show_default="off")] = False,
    engine: Annotated[Optional[bool], typer.Option("--engine/--no-engine",
                                                   help="Force / skip the TensorRT engine.",
                                                   show_default="build where TensorRT and a GPU are present")] = None,
    max_batch: Annotated[Optional[int], typer.Option("--max-batch", help="Largest batch the engine accepts "
                                                     "(its optimization profile is 1..N).", show_default="1024")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset to write (17 or newer).",
                                                 show_default="18")] = None,
) -> None:
    """Export a trained generator to ONNX (and TensorRT), checking every artifact against PyTorch."""
    from dcgan_rt.extras import require_train

    require_train("dcgan-rt export")
    from dcgan_rt.api import export as export_model  # checks the arguments before importing torch

    def log(msg: str) -> None:
        console.print(msg, style="dim", markup=False, highlight=False)

    try:
        report = export_model(model, out, fp16=fp16, uint8=uint8, int8=int8, engine=engine, max_batch=max_batch,
                              opset=opset, log=log)
    except NumericalError as exc:
        if getattr(exc, "results", None):
            console.print(parity_table(exc.results, f"parity vs PyTorch fp32 (latent seed {exc.seed})"))
        raise
    console.print(parity_table(report.results, f"parity vs PyTorch fp32 (latent seed {report.seed}, "
                                               f"{report.results[0].count} images)"))
    for path in report.files:
        console.print(f"wrote {path} ({human_bytes(path.stat().st_size)})", markup=False, highlight=False, soft_wrap=True)
    if report.no_engine_reason:
        console.print(f"no TensorRT engine built: {report.no_engine_reason}", markup=False, highlight=False,
                      soft_wrap=True)
