"""Where dcgan-rt keeps files it can rebuild: engine caches, timing caches, downloads.

Core tier (standard library). One root for every tier: $DCGAN_RT_CACHE when set,
else $XDG_CACHE_HOME/dcgan-rt, else ~/.cache/dcgan-rt. The XDG Base Directory spec
says a relative $XDG_CACHE_HOME is invalid and must be ignored, so an empty or
relative one falls back to ~/.cache; the root is always returned absolute, so a
cache never lands in whatever folder a command happened to start in.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcgan_rt.errors import DcganRtError


class CacheDirError(DcganRtError):
    """The cache folder cannot be created or written."""


def cache_root() -> Path:
    """The absolute cache root (not created)."""
    explicit = os.environ.get("DCGAN_RT_CACHE")
    if explicit:
        return Path(os.path.abspath(os.path.expanduser(explicit)))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.path.abspath(base)) / "dcgan-rt"


def cache_dir(*parts: str) -> Path:
    """cache_root()/parts..., created; a folder that cannot be made is one clear error."""
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheDirError(
            f"cannot create the cache folder {path} ({exc.strerror or exc}): set DCGAN_RT_CACHE to a writable folder"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"the cache folder {path} is not writable: set DCGAN_RT_CACHE to a writable folder")
    return path
