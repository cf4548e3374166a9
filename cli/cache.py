"""`dcgan-rt cache`: what dcgan-rt keeps under its cache root, with sizes; `dcgan-rt cache clear` removes it.

CLI tier: dcgan_rt.cache knows the kinds (decoded data sets, downloads, engines,
FID statistics, classifiers) and removes only their files. Clearing every kind
asks for --yes; clearing named kinds does not.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from dcgan_rt.cache import KIND_NAMES, cache_kinds, cache_root, cache_usage, clear_cache
from dcgan_rt.cli.common import console, handle_errors, human_bytes
from dcgan_rt.errors import UsageError

app = typer.Typer(help="List (with sizes) and clear what dcgan-rt caches: decoded data sets, TensorRT engines, "
                       "FID statistics, the digit classifier, downloads, OpenVINO compiled models.", no_args_is_help=False)

KindOption = Annotated[Optional[list[str]], typer.Option(
    "--kind", "-k", metavar="KIND", help="Only this kind (repeatable): datasets, downloads, engines, fid, classifiers, openvino.",
    show_default="every kind")]


def _usage_dict(usage) -> dict:
    return {"root": str(cache_root()), "total_bytes": sum(u.size for u in usage),
            "kinds": {u.kind.name: {"bytes": u.size, "files": u.files, "what": u.kind.what,
                                    "paths": [str(p) for p in u.paths]} for u in usage}}


def _print_usage(usage, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_usage_dict(usage), indent=2))
        return
    table = Table(title=f"cache: {escape(str(cache_root()))}", title_justify="left", box=box.SIMPLE, pad_edge=False)
    for column in ("kind", "size", "files", "what"):
        table.add_column(column, justify="right" if column in ("size", "files") else "left",
                         no_wrap=column != "what")
    for u in usage:
        table.add_row(u.kind.name, human_bytes(u.size), f"{u.files:,}", escape(u.kind.what))
    table.add_row("[bold]total[/]", f"[bold]{human_bytes(sum(u.size for u in usage))}[/]",
                  f"{sum(u.files for u in usage):,}", "")
    console.print(table)


@app.callback(invoke_without_command=True)
@handle_errors
def cache(
    ctx: typer.Context,
    kind: KindOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the listing as JSON (bytes, files, paths).",
                                          show_default="off")] = False,
) -> None:
    """List what the cache root ($DCGAN_RT_CACHE, else the user cache folder) holds, by kind, with sizes."""
    if ctx.invoked_subcommand is None:
        _print_usage(cache_usage(cache_kinds(kind)), as_json)


@app.command(name="list")
@handle_errors
def list_cache(
    kind: KindOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the listing as JSON (bytes, files, paths).",
                                          show_default="off")] = False,
) -> None:
    """List what the cache holds, by kind, with sizes (the same as plain `dcgan-rt cache`)."""
    _print_usage(cache_usage(cache_kinds(kind)), as_json)


@app.command(name="clear")
@handle_errors
def clear(
    kind: KindOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm clearing every kind (not needed with --kind).",
                                     show_default="off")]
    = False,
) -> None:
    """Remove cached files: the kinds given with --kind, or every kind with --yes (all is rebuilt when next needed)."""
    kinds = cache_kinds(kind)
    if not kind and not yes:
        held = sum(u.size for u in cache_usage(kinds))
        raise UsageError(f"clearing the whole cache ({human_bytes(held)} in {cache_root()}) needs --yes; "
                         f"or clear part of it with --kind {'|'.join(KIND_NAMES)}")
    removed = clear_cache(kinds)
    for u in removed:
        console.print(f"cleared {u.kind.name}: {human_bytes(u.size)} ({u.files:,} file{'' if u.files == 1 else 's'})", highlight=False)
