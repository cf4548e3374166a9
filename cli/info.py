"""`dcgan-rt info FILE`: the model card of a .safetensors / .onnx / .engine, as a table or JSON.

CLI tier. Fast: dcgan_rt.model_info reads cards, headers and sidecars; nothing here
imports torch or TensorRT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from dcgan_rt.cli.common import console, handle_errors


def _shape(spec: dict) -> str:
    return f"{spec['name']}: {spec['dtype']} [{', '.join(map(str, spec['shape']))}]"


def _value(v: Any) -> str:
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)


def info_table(info: dict) -> Table:
    table = Table(box=box.SIMPLE, show_header=False, pad_edge=False, title=f"{info['file']['kind']} model card",
                  title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")

    def section(name: str, rows: dict) -> None:
        table.add_row(f"[cyan]{name}[/]", "")
        for key, value in rows.items():
            table.add_row(f"  {key}", escape(_value(value)))

    f = info["file"]
    section("file", {k: v for k, v in f.items() if k != "kind"})
    section("model", info["model_config"])
    io = info["io"]
    inputs = io.get("inputs") or [io["input"]]  # older engine sidecars list z alone
    io_rows = {"inputs" if len(inputs) > 1 else "input": ", ".join(_shape(spec) for spec in inputs),
               "output": _shape(io["output"]), "output range": io["output"].get("range")}
    if "rule" in io["output"]:
        io_rows["uint8 rule"] = io["output"]["rule"]
    section("I/O", io_rows)
    if info.get("labels"):  # a conditional model: what its label input means
        section("labels", {"kind": info["labels"]["kind"], "names": ", ".join(info["labels"]["names"])})
    section("precision", {"computes in": info["precision"],
                          **({"parameters": f"{info['parameters']:,}"} if "parameters" in info else {})})
    if info.get("calibration"):  # int8: how the quantization scales were found
        section("calibration", info["calibration"])
    section("provenance", info["provenance"])
    if info.get("export"):
        section("export", info["export"])
    if info.get("onnx"):
        section("onnx", info["onnx"])
    if info.get("engine"):
        section("engine", info["engine"])
    return table


@handle_errors
def info(
    file: Annotated[Path, typer.Argument(help="A .safetensors (generator.json beside it), .onnx or .engine "
                                              "(sidecar beside it), or a run directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.", show_default="off")] = False,
) -> None:
    """Show what a model file is: config, I/O, precision, sizes, hashes, provenance."""
    from dcgan_rt.model_info import describe_model

    described = describe_model(file)
    if as_json:
        typer.echo(json.dumps(described, indent=2, sort_keys=True))
    else:
        console.print(info_table(described))
