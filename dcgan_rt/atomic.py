"""Atomic file writes: a crash or Ctrl-C never leaves a partial file under the final name.

Core tier. Everything is written to a temporary name in the same directory,
flushed and fsynced, then renamed over the target (rename is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import IO, Any, Iterator


def existing_ancestor(path: Path) -> Path:
    """`path` itself if it exists, else its nearest existing ancestor: what decides
    whether `path` can be created (checked before any work starts)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def temp_path(path: Path) -> Path:
    """The temp name beside `path` that a write in progress uses, unique per process and
    thread (writer threads never share one); writers.temp_target reads these names back."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """The one temp-file-and-rename every writer uses: yields a temp path beside `path`
    to write (also for libraries that insist on writing a path themselves: torch.save,
    onnx.save); on clean exit it is fsynced (unless `fsync` is False) and renamed over
    `path`, on error it vanishes. Files are created 0666 & ~umask, as open() makes them."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if fsync:  # reopened: a library may have replaced the file it was given
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit it replaces `path`, on error it vanishes."""
    with atomic_path(path, fsync) as tmp, open(tmp, mode) as fh:
        yield fh


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """`fsync=False` for many small files (an fsync each would cost more than making them):
    rename alone still means a killed process never leaves a partial file under `path`."""
    with atomic_open(path, "wb", fsync) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Sorted, indented JSON with a trailing newline, written atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
