"""What every command shares: the console, --debug, and turning errors into exit codes.

CLI tier. Library code raises DcganRtError subclasses; `handle_errors` prints them
as one red line on stderr and exits 1 (2 for UsageError). With --debug the
traceback is shown instead.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dcgan_rt.errors import DcganRtError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def debug_enabled() -> bool:
    return os.environ.get("DCGAN_RT_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = 1) -> None:
    """Print one clear error line and exit."""
    # escape: messages name things like 'dcgan-rt[gpu]' that rich would take for markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Decorate a command: DcganRtError -> one line + exit code; Ctrl-C -> exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DcganRtError as exc:
            if debug_enabled():
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130)
        except OSError as exc:
            if debug_enabled():
                raise
            # Disk full, permission denied... from code that did not wrap it itself.
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}: check the path, its permissions and free space")

    return wrapper  # type: ignore[return-value]


def is_tty() -> bool:
    return sys.stdout.isatty()


def human_bytes(n: float) -> str:
    """The one way sizes are shown: binary units (1 KiB = 1024 B), as `ls -h` and `du -h` count."""
    units = ("B", "KiB", "MiB", "GiB")
    k = 0
    while n >= 1024 and k < len(units) - 1:
        n, k = n / 1024, k + 1
    return f"{n:,.0f} B" if k == 0 else f"{n:,.1f} {units[k]}"
