"""Owning a `generate` output folder: who may write there, what --overwrite removes, and shard merging.

Core tier (numpy + Pillow). dcgan_rt.manifest says what a manifest holds and whether
a job may resume it; this module acts on the folder:

- `check_out_dir`: refuse an --out that cannot become a writable directory (nothing made);
- `prepare_dir`: refuse another job's images (or a foreign folder) unless --overwrite,
  which removes only what dcgan-rt wrote; remove temp files a killed run left;
- `shard_range`: the K-th of N contiguous slices of the job's files;
- `complete_job`: when every shard is done, the last one merges the shard manifests
  into one manifest.json (under a lock), then writes preview.png and the writer's
  index, so N shards leave exactly what one unsharded run would.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dcgan_rt.atomic import existing_ancestor, write_bytes, write_json
from dcgan_rt.errors import DcganRtError
from dcgan_rt.images import encode_png, make_grid
from dcgan_rt.label_files import LABELS_NAME
from dcgan_rt.lock import LOCK_NAME, MERGE_LOCK_NAME, merge_lock
from dcgan_rt.manifest import (
    MANIFEST_NAME, PREVIEW_NAME, Job, OutputConflictError, conflicts, existing_manifests, is_part_name, merge_runs,
    now, read_manifest, summarise_runs,
)
from dcgan_rt.writers import INDEX_NAME, Writer, file_span, temp_target

PREVIEW_IMAGES = 64
PREVIEW_COLUMNS = 8
_JOB_FILES = (MANIFEST_NAME, PREVIEW_NAME, INDEX_NAME, LABELS_NAME)
_LOCK_FILES = (LOCK_NAME, MERGE_LOCK_NAME)


class OutputDirError(DcganRtError):
    """--out cannot be created or written."""


def check_out_dir(out: Path) -> None:
    """Refuse an --out that cannot become a writable directory, without creating it."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out {out} is a file, not a directory: choose a new or empty directory")
    ancestor = existing_ancestor(out)
    if not ancestor.is_dir():
        raise OutputDirError(f"cannot create --out {out}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot write to {ancestor} (permission denied): choose another --out")


def shard_range(start: int, count: int, shard: int, num_shards: int, unit: int) -> tuple[int, int]:
    """Shard `shard` of `num_shards`: a contiguous run of whole files of the job's range."""
    end = start + count
    first, last = start // unit, (end - 1) // unit
    units = last - first + 1
    lo = first + units * shard // num_shards
    hi = first + units * (shard + 1) // num_shards
    if lo == hi:
        return end, end  # more shards than files: this one has nothing to do
    return max(start, lo * unit), min(end, hi * unit)


def is_ours(name: str) -> bool:
    """A file name dcgan-rt generate writes (job files, shard manifests, image files)."""
    return name in _JOB_FILES or is_part_name(name) or file_span(name) is not None


def prepare_dir(out: Path, job: Job, writer: Writer, overwrite: bool, k: int, num_shards: int,
                lo: int, hi: int, info) -> None:
    """Make `out` ready for shard k's slice [lo, hi) of `job`, or refuse; info(message) reports."""
    manifests = _readable_manifests(out, overwrite, info)
    bad = {name: why for name, m in manifests.items() if (why := conflicts(m, job))}
    foreign = not manifests and any(
        not (e.name in _LOCK_FILES or e.name.startswith(".dcgan-rt.") or temp_target(e.name))
        for e in os.scandir(out)
    )
    if bad or foreign:
        if not overwrite:
            if bad:
                why = next(iter(bad.values()))
                raise OutputConflictError(
                    f"{out} holds another job's images: {'; '.join(why)}. Choose another --out, or pass --overwrite "
                    "to replace them"
                )
            raise OutputConflictError(
                f"{out} is not empty and has no manifest.json from dcgan-rt generate; choose an empty or new --out, "
                "or pass --overwrite to replace what dcgan-rt would write there"
            )
        removed = _clear(out, job, set(bad), k, num_shards, lo, hi)
        info(f"--overwrite: removed {removed:,} files of the previous contents of {out}")
    temps = writer.remove_temps(lo, hi)
    if num_shards == 1:
        for entry in os.scandir(out):  # job files' temps too: nobody else writes here now
            target = temp_target(entry.name)
            if target and is_ours(target):
                os.unlink(entry.path)
                temps += 1
    if temps:
        info(f"removed {temps} partial files a killed run left behind")


def _readable_manifests(out: Path, overwrite: bool, info) -> dict[str, dict]:
    """existing_manifests(out); with --overwrite a damaged manifest is removed instead of refused."""
    try:
        return existing_manifests(out)
    except OutputConflictError:
        if not overwrite:
            raise
    for path in sorted(out.glob("manifest*.json")):
        if path.name == MANIFEST_NAME or is_part_name(path.name):
            try:
                read_manifest(path)
            except OutputConflictError:
                path.unlink(missing_ok=True)
                info(f"--overwrite: removed the damaged {path.name}")
    return existing_manifests(out)


def _clear(out: Path, job: Job, bad_manifests: set[str], k: int, num_shards: int, lo: int, hi: int) -> int:
    """--overwrite: remove what dcgan-rt wrote here before. Unsharded: all of it; a shard
    removes the files in its own slice (shard 0 also those outside the new job)."""
    removed = 0
    for entry in _entries(out):
        name = temp_target(entry.name) or entry.name
        if entry.is_dir(follow_symlinks=False):
            continue
        span = file_span(name)
        if num_shards == 1:
            doomed = is_ours(name)
        elif span is not None:
            doomed = (span[0] < hi and span[1] > lo) or (k == 0 and (span[1] <= job.start or span[0] >= job.end))
        else:
            doomed = entry.name in bad_manifests or (k == 0 and name in (PREVIEW_NAME, INDEX_NAME))
            doomed = doomed or (name == MANIFEST_NAME and MANIFEST_NAME in bad_manifests)
            doomed = doomed or (k == 0 and name == LABELS_NAME)
        if doomed and (Path(entry.path).parent == out or span is not None):  # class folders hold only images
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:  # another shard got there first
                pass
    for entry in os.scandir(out) if num_shards == 1 else ():  # class folders (--layout by-class) left empty
        if entry.is_dir(follow_symlinks=False):
            try:
                os.rmdir(entry.path)
            except OSError:  # not empty: it holds what is not ours, or another shard's images
                pass
    return removed


def _entries(out: Path) -> list[os.DirEntry]:
    """out's entries and those of its folders (the class folders of --layout by-class)."""
    top = list(os.scandir(out))
    return top + [e for d in top if d.is_dir(follow_symlinks=False) for e in os.scandir(d.path)]


def complete_job(out: Path, job: Job, writer: Writer, k: int, num_shards: int, info) -> bool:
    """Merge shard manifests when every shard is done; then preview.png and the writer's
    index. False while other shards are still running."""
    with merge_lock(out):
        manifests = existing_manifests(out)
        parts = {name: m for name, m in manifests.items() if is_part_name(name) and not conflicts(m, job)}
        if num_shards > 1:
            mine = {name: m for name, m in parts.items() if m.get("num_shards") == num_shards}
            done = {m["shard"]["index"] for m in mine.values() if m.get("complete")}
            missing = sorted(set(range(num_shards)) - done)
            if missing:
                info(f"shard {k}/{num_shards} is done; waiting for shard(s) {', '.join(map(str, missing))}: "
                     "the last one to finish writes manifest.json and preview.png")
                return False
        main = manifests.get(MANIFEST_NAME)
        sources = ([main] if main and not conflicts(main, job) else []) + list(parts.values())
        runs = merge_runs(sources)
        write_json(out / MANIFEST_NAME, {
            **job.to_manifest(), "num_shards": num_shards, "backend": summarise_runs(runs, "backend"),
            "complete": True, "images_done": job.count,
            "runs": runs, "updated": now(),
        })
        for name in parts:
            (out / name).unlink(missing_ok=True)
        writer.finalize(job.start, job.end)
        first = np.arange(job.start, min(job.start + PREVIEW_IMAGES, job.end))
        grid = make_grid(writer.read(first), PREVIEW_COLUMNS)
        write_bytes(out / PREVIEW_NAME, encode_png(grid, text=writer.png_text.constant if writer.png_text else b""))
    return True
