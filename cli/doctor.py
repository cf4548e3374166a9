"""`dcgan-rt doctor [MODEL]`: this machine's environment, and parity on every backend it has.

CLI tier: prints dcgan_rt.environment's report; with MODEL, runs
dcgan_rt.export.checks (every backend built as generate builds it) and prints the
parity table, what was not checked and why, and one line per failure: a backend
that could not start or a row outside its bound. Exit 1 if there is any, so a user
with a GPU verifies their own install. Without MODEL, an installed runtime that
does not load is the failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from dcgan_rt.cli.common import console, handle_errors
from dcgan_rt.errors import DcganRtError, NumericalError, UsageError


def environment_table(report: dict) -> Table:
    table = Table(title="environment", title_justify="left", box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for section, rows in report.items():
        table.add_row(f"[cyan]{section}[/]", "")
        for key, value in rows.items():
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            table.add_row(f"  {key}", escape(text))
    return table


@handle_errors
def doctor(
    model: Annotated[Optional[Path], typer.Argument(help="Also check this model (run directory, .safetensors, "
                                                         ".onnx or .engine) on every backend here.",
                                                    show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the environment as JSON.", show_default="off")] = False,
) -> None:
    """Report the environment and, given a model, run the parity checks on every backend."""
    from dcgan_rt.environment import environment_report

    if as_json and model is not None:
        raise UsageError("--json prints the environment only; run without --json to check a model")
    report = environment_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    console.print(environment_table(report))
    if model is None:
        broken = [f"{section}: {rows['version']}" for section, rows in report.items()
                  if str(rows.get("version", "")).startswith("installed but does not load")]
        broken += [f"{section}: {rows['conflict']}" for section, rows in report.items() if "conflict" in rows]
        for line in broken:
            console.print(f"FAIL {line}", style="red", markup=False, highlight=False, soft_wrap=True)
        if broken:
            raise DcganRtError(f"{len(broken)} installed component(s) do not load or conflict (listed above)")
        return

    from dcgan_rt.cli.export import parity_table
    from dcgan_rt.export.checks import check_model

    result = check_model(model, log=lambda msg: console.print(msg, style="dim", markup=False, highlight=False))
    console.print(parity_table(result.results, f"parity vs {result.reference} (latent seed {result.seed})"))
    for line in result.skipped:
        console.print(f"not checked: {line}", markup=False, highlight=False, soft_wrap=True)
    problems = result.problems()
    for line in problems:
        console.print(f"FAIL {line}", style="red", markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise NumericalError(f"{len(problems)} of {len(result.results) + len(result.failures)} checks failed "
                             f"(latent seed {result.seed}): one line each above")
    console.print(f"all checks passed ({len(result.results)})", style="green", highlight=False)
