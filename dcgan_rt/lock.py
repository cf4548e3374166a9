"""One writer per output directory: advisory locks (fcntl.flock) that vanish with the process.

Core tier (standard library). An unsharded `generate` holds DIR/.dcgan-rt.lock
exclusively. A sharded run (--shard K/N, or one torchrun rank) holds it shared,
so the N shards of one job can write side by side, plus .dcgan-rt.shard-K-of-N.lock
exclusively, so the same shard cannot run twice. The kernel drops the locks when
the process dies, even by SIGKILL, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from dcgan_rt.errors import DcganRtError

LOCK_NAME = ".dcgan-rt.lock"
MERGE_LOCK_NAME = ".dcgan-rt.merge.lock"


class OutputLockedError(DcganRtError):
    """Another dcgan-rt process is writing this output directory."""


def shard_lock_name(shard: int, num_shards: int) -> str:
    return f".dcgan-rt.shard-{shard}-of-{num_shards}.lock"


def _flock(path: Path, mode: int, blocking: bool = False) -> int | None:
    """An fd holding `mode` (LOCK_EX/LOCK_SH) on `path`, or None if someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


class OutputLock:
    """Context manager: the right to write DIR (or one shard of it)."""

    def __init__(self, out_dir: str | os.PathLike, shard: int | None = None, num_shards: int = 1):
        self.out_dir = Path(out_dir)
        self.sharded = num_shards > 1
        self.shard, self.num_shards = shard, num_shards
        self._fds: list[int] = []

    def acquire(self) -> "OutputLock":
        main = self.out_dir / LOCK_NAME
        fd = _flock(main, fcntl.LOCK_SH if self.sharded else fcntl.LOCK_EX)
        if fd is None:
            raise OutputLockedError(
                f"{self.out_dir} is being written by another dcgan-rt generate{_holder(main)}; "
                "wait for it to finish or choose another --out"
            )
        self._fds.append(fd)
        owner = main
        if self.sharded:
            owner = self.out_dir / shard_lock_name(self.shard, self.num_shards)
            fd = _flock(owner, fcntl.LOCK_EX)
            if fd is None:
                self.release()
                raise OutputLockedError(
                    f"shard {self.shard}/{self.num_shards} of {self.out_dir} is already being written by another "
                    f"dcgan-rt generate{_holder(owner)}; wait for it to finish"
                )
            self._fds.append(fd)
        with contextlib.suppress(OSError):  # the pid is only for the message above
            os.ftruncate(self._fds[-1], 0)
            os.pwrite(self._fds[-1], f"{os.getpid()}\n".encode(), 0)
        return self

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())  # closing the fd drops its flock

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike):
    """Holds an exclusive flock on `path` (created if missing) for the block, waiting for it."""
    fd = _flock(Path(path), fcntl.LOCK_EX, blocking=True)
    try:
        yield
    finally:
        os.close(fd)


def merge_lock(out_dir: str | os.PathLike):
    """Serialises the final 'are all shards done? then merge' step between shards."""
    return exclusive_lock(Path(out_dir) / MERGE_LOCK_NAME)
