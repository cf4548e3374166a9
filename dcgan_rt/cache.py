"""Where dcgan-rt keeps files it can rebuild: decoded data sets, engine caches, FID statistics...

Core tier (standard library). One root for every tier: $DCGAN_RT_CACHE when set,
else $XDG_CACHE_HOME/dcgan-rt, else ~/.cache/dcgan-rt. The XDG Base Directory spec
says a relative $XDG_CACHE_HOME is invalid and must be ignored, so an empty or
relative one falls back to ~/.cache; the root is always returned absolute, so a
cache never lands in whatever folder a command happened to start in.

`CACHE_KINDS` names what lives under the root (`dcgan-rt cache` lists and clears them).
Clearing removes only the files of those kinds, never the root itself nor anything
else in it, so a DCGAN_RT_CACHE pointed at a shared folder loses nothing of its own.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dcgan_rt.errors import DcganRtError, UsageError


class CacheDirError(DcganRtError):
    """The cache folder cannot be created or written."""


@dataclass(frozen=True)
class CacheKind:
    name: str
    patterns: tuple[str, ...]  # glob patterns under the root
    what: str


CACHE_KINDS = (
    CacheKind("datasets", ("decoded",), "decoded image folders (train, evaluate)"),
    CacheKind("downloads", ("datasets",), "downloaded MNIST / CelebA (the default --data-root)"),
    CacheKind("engines", ("ort-tensorrt", "tensorrt-*.timing-cache"),
              "TensorRT timing caches, ONNX Runtime TensorRT-EP engines"),
    CacheKind("fid", ("fid",), "FID statistics of real images"),
    CacheKind("classifiers", ("digits-*.safetensors",), "the digit classifier (evaluate)"),
    CacheKind("openvino", ("openvino",), "OpenVINO compiled models, one folder per ONNX file's sha256"),
)
KIND_NAMES = tuple(k.name for k in CACHE_KINDS)


@dataclass(frozen=True)
class KindUsage:
    kind: CacheKind
    paths: tuple[Path, ...]  # the top-level entries of this kind that exist
    files: int
    size: int  # bytes on disk as the files' lengths add up


def cache_kinds(names: list[str] | tuple[str, ...] | None = None) -> tuple[CacheKind, ...]:
    """The kinds called `names` (all for None or empty); an unknown name is a UsageError."""
    if not names:
        return CACHE_KINDS
    unknown = [n for n in names if n not in KIND_NAMES]
    if unknown:
        raise UsageError(f"--kind {unknown[0]!r} is not a cache kind: pass one of {', '.join(KIND_NAMES)}")
    return tuple(k for k in CACHE_KINDS if k.name in names)


def cache_usage(kinds: tuple[CacheKind, ...] = CACHE_KINDS) -> list[KindUsage]:
    """What each kind holds under cache_root() now (nothing is created)."""
    root = cache_root()
    usage = []
    for kind in kinds:
        paths = sorted({p for pattern in kind.patterns for p in root.glob(pattern)}) if root.is_dir() else []
        files = size = 0
        for path in paths:
            for f in _files(path):
                try:
                    size += f.lstat().st_size
                    files += 1
                except OSError:  # removed while we looked
                    pass
        usage.append(KindUsage(kind, tuple(paths), files, size))
    return usage


def clear_cache(kinds: tuple[CacheKind, ...]) -> list[KindUsage]:
    """Remove every file of `kinds`; returns what was there."""
    usage = cache_usage(kinds)
    for item in usage:
        for path in item.paths:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CacheDirError(f"cannot remove {path} ({exc.strerror or exc}): check its permissions") from None
    return usage


def _files(path: Path):
    if path.is_dir() and not path.is_symlink():
        for dirpath, _, filenames in os.walk(path):
            for name in filenames:
                yield Path(dirpath) / name
    else:
        yield path


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
