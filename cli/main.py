"""The `dcgan-rt` command: one Typer app joining every command module.

CLI tier. Each command lives in its own module and imports heavy libraries
(torch, onnxruntime, tensorrt) only when it runs.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from dcgan_rt import __version__
from dcgan_rt.cli import (
    bench,
    cache,
    doctor,
    evaluate,
    export,
    generate,
    importer,
    info,
    sample,
    train,
)

app = typer.Typer(
    name="dcgan-rt",
    help="Train DCGAN generators and run them as fast, reproducible image factories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dcgan-rt {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.",
                                                 show_default="off")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """dcgan-rt: train -> export -> generate."""
    if debug:
        os.environ["DCGAN_RT_DEBUG"] = "1"


app.command(name="train")(train.train)
app.command(name="import")(importer.import_model)
app.command(name="export")(export.export)
app.command(name="generate")(generate.generate)
app.command(name="sample")(sample.sample)
app.command(name="interpolate")(sample.interpolate)
app.command(name="bench")(bench.bench)
app.command(name="evaluate")(evaluate.evaluate)
app.command(name="info")(info.info)
app.command(name="doctor")(doctor.doctor)
app.add_typer(cache.app, name="cache")


def main() -> None:
    app(prog_name="dcgan-rt")


if __name__ == "__main__":
    main()
