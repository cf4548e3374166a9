"""SHA-256 of artifact files, streamed so a large engine never sits in memory twice;
and a per-job memo so one command reads each model file once.

Core tier (standard library only).

`generate` looks at one model file several times (which backend, its card, the
manifest's hashes of the weights and of the file that ran): on the default 64x64
generator (14 MB) that was four hashes and three ONNX parses, ~70 ms of a
2,000-image run. Inside `with file_memo():` each (kind, file) is computed once; the
key includes the file's size, mtime and inode, and the memo ends with the block, so
nothing stale outlives the command that made it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
from typing import Callable, Iterator, TypeVar

_CHUNK = 1 << 20
_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("dcgan_rt_file_memo", default=None)
T = TypeVar("T")


@contextlib.contextmanager
def file_memo() -> Iterator[None]:
    """Within the block, memoized(kind, path, ...) computes each file's value once."""
    if _MEMO.get() is not None:  # nested: the outer block's memo serves
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def memoized(kind: str, path: str | os.PathLike, compute: Callable[[], T]) -> T:
    """compute(), or the value it gave for this unchanged file earlier in the same file_memo block."""
    memo = _MEMO.get()
    if memo is None:
        return compute()
    try:
        st = os.stat(path)
    except OSError:
        return compute()  # the caller's own code reports a missing file in its words
    key = (kind, os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def sha256_file(path: str | os.PathLike) -> str:
    return memoized("sha256", path, lambda: _sha256_file(path))


def _sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
