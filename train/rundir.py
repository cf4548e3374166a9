"""Run directories: runs/NNNNN-<desc>/ with a `latest` pointer beside them.

Training tier (no torch needed). Numbers only grow; two trainings started at once
get distinct directories (the number is chosen under a file lock and the directory
made with os.mkdir, which fails rather than share). `latest` is a relative symlink
replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from dcgan_rt.atomic import existing_ancestor
from dcgan_rt.errors import DcganRtError

_RUN_NAME = re.compile(r"^(\d{5,})-")
LATEST = "latest"


def run_desc(data_name: str, img_resolution: int) -> str:
    """A short, filesystem-safe description: mnist-5k-32px, celeba-64px, faces-64px."""
    base = Path(data_name.rstrip("/")).name or "data"
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-") or "data"
    return f"{base[:40]}-{img_resolution}px"


def check_out_dir(out: str | Path) -> None:
    """Fail early (before any data is loaded) when `out` cannot be created or written."""
    out = Path(out)
    existing = existing_ancestor(out.absolute())
    if not existing.is_dir():
        raise DcganRtError(f"cannot create the output folder {out}: {existing} is a file; pass a writable --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DcganRtError(f"the output folder {out} is not writable ({existing} is read-only to you): "
                           "pass a writable --out")


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DcganRtError(f"cannot create the output folder {out} ({exc.strerror or exc}): "
                           "pass a writable --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise DcganRtError(f"the output folder {out} is not writable: pass a writable --out")


@contextlib.contextmanager
def _locked(out: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: os.mkdir alone still refuses to share a directory
        yield
        return
    with open(out / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def create_run_dir(out: str | Path, desc: str) -> Path:
    """Make out/NNNNN-desc with the next free number and return it."""
    out = Path(out)
    _prepare_out(out)
    with _locked(out):
        for _ in range(1000):
            numbers = [int(m.group(1)) for name in os.listdir(out) if (m := _RUN_NAME.match(name))]
            run_dir = out / f"{max(numbers, default=-1) + 1:05d}-{desc}"
            try:
                os.mkdir(run_dir)
                return run_dir
            except FileExistsError:
                continue
            except OSError as exc:
                raise DcganRtError(f"cannot create {run_dir} ({exc.strerror or exc}): pass a writable --out") from None
    raise DcganRtError(f"could not find a free run number in {out}")


def update_latest(run_dir: Path) -> None:
    """Point run_dir.parent/latest at run_dir (relative link, swapped in atomically)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EISDIR):
            return  # no symlinks here (some network filesystems): the printed path still says where
        raise
