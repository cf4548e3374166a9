"""The generation pipeline: backend batches -> bounded queue -> writer threads -> manifest.

Core tier (numpy + Pillow; the backend brings its own runtime). `generate()` is
what `dcgan-rt generate` runs:

1. check every argument and the model before anything is written;
2. lock DIR (dcgan_rt.lock), compare its manifest with this job (refuse another
   model or seed unless --overwrite), and list the images still missing, so a
   re-run (after Ctrl-C, kill -9 or a full disk) only makes those;
3. the main thread turns index batches into latents z(seed, i) and runs the
   backend; a queue of a few batches feeds writer threads that encode and write
   atomically, so encoding and disk I/O overlap with inference;
4. the manifest is marked complete, then preview.png (the first 64 images) and,
   for npy, index.json are written.

Sharding: --shard K/N (or torchrun's RANK/WORLD_SIZE) takes the K-th of N
contiguous slices of the job's files. Each shard writes manifest.shard-K-of-N.json;
the last shard to finish merges them into one manifest.json (under a lock), so N
shards leave exactly what one unsharded run would.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan_rt.atomic import existing_ancestor, write_bytes, write_json
from dcgan_rt.backends import Backend, select_backend, source_sha256
from dcgan_rt.digest import sha256_file
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.images import encode_png, make_grid
from dcgan_rt.latents import MAX_INDEX, MAX_SEED, latents
from dcgan_rt.lock import LOCK_NAME, MERGE_LOCK_NAME, OutputLock, merge_lock
from dcgan_rt.manifest import (
    MANIFEST_NAME, PREVIEW_NAME, Job, OutputConflictError, conflicts, existing_manifests, is_part_name,
    merge_runs, now, part_name, read_manifest, summarise_runs,
)
from dcgan_rt.model_path import resolve_model
from dcgan_rt.provenance import PngText
from dcgan_rt.writers import (
    IMAGES_PER_FILE, INDEX_NAME, Writer, check_format, file_span, make_writer, ranges_count, temp_target,
)

PREVIEW_IMAGES = 64
PREVIEW_COLUMNS = 8
BATCH_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_PROGRESS_SAVE_SECONDS = 10.0
_TUNE_BATCHES = 4  # per round: two rounds of two batches side by side on two cores
_TUNE_SHARE = 0.1  # of the job's expected time, at most, spent measuring batch sizes


class OutputDirError(DcganRtError):
    """--out cannot be created or written."""


@dataclass
class GenerateRequest:
    model: str | Path
    out: str | Path
    n: int
    seed: int = 0
    start: int = 0
    batch_size: int | str = "auto"
    backend: str = "auto"
    format: str = "png"
    shard: str | None = None  # "K/N"; None: from torchrun's RANK/WORLD_SIZE, else unsharded
    overwrite: bool = False
    save_latents: bool = False
    gpu: int | None = None  # CUDA device; None: 0, or LOCAL_RANK under torchrun
    precision: str | None = None  # "fp16": the torch backend on CUDA in half precision (opt-in)


@dataclass
class GenerateResult:
    out: Path
    job_images: int  # the whole job (every shard)
    shard_images: int  # this shard's slice (== job_images when unsharded)
    generated: int  # made by this run
    skipped: int  # already in DIR
    seconds: float
    bytes_written: int
    backend: str
    batch_size: int
    batch_rates: dict[int, float] = field(default_factory=dict)  # --batch-size auto measurements
    complete: bool = False  # the whole job is in DIR and manifest.json says so

    @property
    def images_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


class Reporter:
    """What the pipeline tells its caller; the CLI draws a progress bar from it."""

    def info(self, message: str) -> None:
        pass

    def start(self, total: int, done: int, label: str) -> None:
        pass

    def label(self, label: str) -> None:
        pass

    def advance(self, done: int) -> None:
        pass

    def stop(self) -> None:
        pass


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise UsageError(f"--shard must look like K/N, e.g. 0/4, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or k >= n:
        raise UsageError(f"--shard {text}: shards are numbered 0..N-1, so K must be below N")
    return k, n


def shard_from_env(env=os.environ) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun, when WORLD_SIZE > 1."""
    if "WORLD_SIZE" not in env:
        return None
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
    except ValueError:
        raise UsageError(
            f"RANK/WORLD_SIZE must be integers, got {env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}"
        ) from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise UsageError(f"RANK {rank} is outside 0..WORLD_SIZE-1 ({world})")
    return rank, world


def parse_batch_size(value: int | str) -> int | None:
    """None means auto."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return None
        try:
            value = int(value)
        except ValueError:
            raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {value!r}") from None
    if isinstance(value, bool) or value < 1:
        raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {value!r}")
    return int(value)


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


def check_request(req: GenerateRequest) -> tuple[str, int, int, int, int | None, tuple[int, int] | None]:
    """Every argument checked, before anything is loaded or written."""
    fmt = check_format(req.format)
    for flag, value, low in (("-n", req.n, 1), ("--start", req.start, 0), ("--seed", req.seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UsageError(f"{flag} must be an integer >= {low}, got {value!r}")
    if req.seed > MAX_SEED:
        raise UsageError(f"--seed must be at most {MAX_SEED}, got {req.seed}")
    if req.start + req.n - 1 > MAX_INDEX:
        raise UsageError(f"image indices must stay below 2^32: --start {req.start} + -n {req.n} is too far")
    batch = parse_batch_size(req.batch_size)
    shard = parse_shard(req.shard) if req.shard is not None else shard_from_env()
    return fmt, int(req.n), int(req.start), int(req.seed), batch, shard


def check_out_dir(out: Path) -> None:
    """Refuse an --out that cannot become a writable directory, without creating it."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out {out} is a file, not a directory: choose a new or empty directory")
    ancestor = existing_ancestor(out)
    if not ancestor.is_dir():
        raise OutputDirError(f"cannot create --out {out}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot write to {ancestor} (permission denied): choose another --out")


def generate(req: GenerateRequest, reporter: Reporter | None = None) -> GenerateResult:
    """Run (or resume) one generate job; see the module docstring."""
    rep = reporter or Reporter()
    fmt, n, start, seed, batch, shard = check_request(req)
    resolved = resolve_model(req.model)
    out = Path(req.out)
    check_out_dir(out)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) if shard else 1
    threads = max(1, usable_cores() // local_world) if local_world > 1 else None
    gpu = req.gpu if req.gpu is not None else (int(os.environ.get("LOCAL_RANK", "0") or 0) if shard else None)
    if gpu is not None and gpu < 0:
        raise UsageError(f"--gpu must be a CUDA device number >= 0, got {gpu}")
    backend = select_backend(resolved, req.backend, gpu=gpu, threads=threads, precision=req.precision)
    with backend:
        rep.info(f"backend: {backend.describe()}; {backend.reason}")
        if batch is not None and backend.max_batch is not None and batch > backend.max_batch:
            raise UsageError(f"--batch-size {batch} is above this model's maximum batch {backend.max_batch}")
        cfg = backend.card.model_config
        c, h, w = cfg.image_shape
        model_sha = sha256_file(resolved.path)
        job = Job(
            model_path=str(resolved.path.resolve()), model_kind=resolved.kind, model_sha256=model_sha,
            weights_sha256=source_sha256(resolved) or model_sha, precision=backend.precision,
            model_card=backend.card.to_dict(), seed=seed, start=start, count=n, format=fmt,
            save_latents=bool(req.save_latents), images_per_file=None if fmt == "png" else IMAGES_PER_FILE,
            image_shape=(h, w, c), z_dim=cfg.z_dim,
        )
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(f"cannot create --out {out} ({exc.strerror}): choose a writable directory") from None
        try:
            return _run_job(job, out, backend, batch, shard or (0, 1), req.overwrite, rep)
        except OSError as exc:  # disk full, quota, file size limit, a vanished mount...
            # numpy reports a short write with no errno ("256000 requested and 199872 written")
            reason = exc.strerror or f"short write: {exc}"
            raise OutputDirError(
                f"cannot write to {out} ({reason}); the file being written was removed and finished files are "
                "kept: free some space (or fix the folder) and run the same command again to resume"
            ) from exc


def _run_job(job: Job, out: Path, backend: Backend, batch: int | None, shard: tuple[int, int], overwrite: bool,
             rep: Reporter) -> GenerateResult:
    k, num_shards = shard
    with OutputLock(out, k, num_shards):
        writer = make_writer(job.format, out, job.image_shape, job.z_dim, job.save_latents, (job.start, job.end),
                             png_text=PngText(job.provenance))
        lo, hi = shard_range(job.start, job.count, k, num_shards, writer.unit)
        if num_shards > 1:
            rep.info(f"shard {k}/{num_shards}: images {lo}..{hi - 1} of {job.start}..{job.end - 1}")
        _prepare_dir(out, job, writer, overwrite, k, num_shards, lo, hi, rep)

        record_path = out / (MANIFEST_NAME if num_shards == 1 else part_name(k, num_shards))
        previous = read_manifest(record_path) or {}
        artifact = backend.artifact.path if backend.artifact else Path(job.model_path)
        run = {"shard": f"{k}/{num_shards}", "range": [lo, hi], "backend": backend.name,
               "backend_detail": backend.describe(), "precision": backend.precision,
               "ran": str(artifact.resolve()), "ran_sha256": sha256_file(artifact), "batch_size": None,
               "generated": 0, "skipped": 0, "seconds": None, "started": now(), "finished": None}
        runs = [*previous.get("runs", []), run]

        def save(complete: bool, done: int) -> None:
            record = {**job.to_manifest(), "num_shards": num_shards, "backend": summarise_runs(runs, "backend"),
                      "complete": complete,
                      "images_done": done, "runs": runs, "updated": now()}
            if num_shards > 1:
                record["shard"] = {"index": k, "num_shards": num_shards, "start": lo, "end": hi}
            write_json(record_path, record)

        pending = writer.pending(lo, hi)
        todo = ranges_count(pending)
        skipped = (hi - lo) - todo
        run["skipped"] = skipped
        save(False, skipped)
        if skipped and todo:
            rep.info(f"resuming: {skipped:,} of {hi - lo:,} images are already in {out}; making the other {todo:,}")
        elif skipped:
            rep.info(f"nothing to do: all {hi - lo:,} images are already in {out}")

        t0 = time.perf_counter()
        written, nbytes, batch_used, rates = _produce(backend, writer, job.seed, pending, batch, rep,
                                                      total=hi - lo, done0=skipped,
                                                      checkpoint=lambda done: save(False, done))
        seconds = time.perf_counter() - t0
        if writer.unfinished() or writer.pending(lo, hi, verify=False):
            raise DcganRtError(
                f"internal error: images {lo}..{hi - 1} are not all in {out} after the run; re-run to finish"
            )
        run.update(generated=written, batch_size=batch_used, seconds=round(seconds, 3), finished=now())
        save(True, hi - lo)
        complete = _complete_job(out, job, writer, k, num_shards, rep)
    return GenerateResult(out=out, job_images=job.count, shard_images=hi - lo, generated=written, skipped=skipped,
                          seconds=seconds, bytes_written=nbytes, backend=backend.describe(),
                          batch_size=batch_used, batch_rates=rates, complete=complete)



_JOB_FILES = (MANIFEST_NAME, PREVIEW_NAME, INDEX_NAME)
_LOCK_FILES = (LOCK_NAME, MERGE_LOCK_NAME)


def _is_ours(name: str) -> bool:
    return name in _JOB_FILES or is_part_name(name) or file_span(name) is not None


def _prepare_dir(out: Path, job: Job, writer: Writer, overwrite: bool, k: int, num_shards: int,
                 lo: int, hi: int, rep: Reporter) -> None:
    manifests = _readable_manifests(out, overwrite, rep)
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
        rep.info(f"--overwrite: removed {removed:,} files of the previous contents of {out}")
    temps = writer.remove_temps(lo, hi)
    if num_shards == 1:
        for entry in os.scandir(out):  # job files' temps too: nobody else writes here now
            target = temp_target(entry.name)
            if target and _is_ours(target):
                os.unlink(entry.path)
                temps += 1
    if temps:
        rep.info(f"removed {temps} partial files a killed run left behind")


def _readable_manifests(out: Path, overwrite: bool, rep: Reporter) -> dict[str, dict]:
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
                rep.info(f"--overwrite: removed the damaged {path.name}")
    return existing_manifests(out)


def _clear(out: Path, job: Job, bad_manifests: set[str], k: int, num_shards: int, lo: int, hi: int) -> int:
    """--overwrite: remove what dcgan-rt wrote here before. Unsharded: all of it; a shard
    removes the files in its own slice (shard 0 also those outside the new job)."""
    removed = 0
    for entry in list(os.scandir(out)):
        name = temp_target(entry.name) or entry.name
        span = file_span(name)
        if num_shards == 1:
            doomed = _is_ours(name)
        elif span is not None:
            doomed = (span[0] < hi and span[1] > lo) or (k == 0 and (span[1] <= job.start or span[0] >= job.end))
        else:
            doomed = entry.name in bad_manifests or (k == 0 and name in (PREVIEW_NAME, INDEX_NAME))
            doomed = doomed or (name == MANIFEST_NAME and MANIFEST_NAME in bad_manifests)
        if doomed:
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:  # another shard got there first
                pass
    return removed



class _IndexStream:
    """Hands out the pending indices in batches, across gaps left by earlier runs."""

    def __init__(self, ranges: list[tuple[int, int]]):
        self._ranges = deque(ranges)
        self.left = ranges_count(ranges)

    def take(self, k: int) -> np.ndarray | None:
        parts, need = [], k
        while need and self._ranges:
            a, b = self._ranges[0]
            m = min(need, b - a)
            parts.append(np.arange(a, a + m, dtype=np.int64))
            need -= m
            if a + m == b:
                self._ranges.popleft()
            else:
                self._ranges[0] = (a + m, b)
        self.left -= k - need
        return np.concatenate(parts) if parts else None


def _writer_threads(writer: Writer) -> int:
    if writer.format == "npy":
        return 1  # copying into a shard buffer is cheap; np.save is one big write
    return max(2, min(4, usable_cores()))


def _produce(backend: Backend, writer: Writer, seed: int, pending: list[tuple[int, int]], batch: int | None,
             rep: Reporter, total: int, done0: int, checkpoint: Callable[[int], None]):
    """Run the backend over the pending indices and write everything; returns
    (images written, bytes written, batch size used, measured rates)."""
    stream = _IndexStream(pending)
    if stream.left == 0:
        return 0, 0, batch or 0, {}
    save_latents = writer.save_latents
    n_threads = _writer_threads(writer)
    jobs: queue.Queue = queue.Queue(maxsize=2 * n_threads)
    lock = threading.Lock()
    counts = {"images": 0, "bytes": 0}
    failures: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        while (item := jobs.get()) is not None:
            if stop.is_set():
                continue
            try:
                nbytes = writer.write_batch(*item)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                stop.set()
                continue
            with lock:
                counts["images"] += len(item[0])
                counts["bytes"] += nbytes

    threads = [threading.Thread(target=work, name=f"dcgan-rt-writer-{i}", daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    last_save = [time.monotonic()]

    def tick() -> None:
        done = done0 + counts["images"]
        rep.advance(done)
        if time.monotonic() - last_save[0] > _PROGRESS_SAVE_SECONDS:
            checkpoint(done)
            last_save[0] = time.monotonic()

    def emit(idx: np.ndarray, images: np.ndarray, z: np.ndarray) -> None:
        item = (idx, images, z if save_latents else None)
        while True:
            if failures:
                raise failures[0]
            try:
                jobs.put(item, timeout=0.2)
                break
            except queue.Full:
                tick()
        tick()

    label = f"{backend.name}, batch {{}}"
    rates: dict[int, float] = {}
    try:
        rep.start(total, done0, label.format("auto" if batch is None else batch))
        if batch is None:
            batch, rates = _tune(backend, stream, seed, emit)
            measured = ", ".join(f"{b}: {r:,.0f}/s" for b, r in rates.items())
            rep.info(f"batch size auto: {batch}" + (f" (images/s measured at {measured})" if rates else
                                                   " (too few images to measure: one batch)"))
            rep.label(label.format(batch))
        in_flight: deque = deque()

        def latent_batches():
            while (idx := stream.take(batch)) is not None:
                z = latents(seed, idx, backend.z_dim)
                in_flight.append((idx, z))
                yield z

        for images in backend.map_images(latent_batches()):
            idx, z = in_flight.popleft()
            emit(idx, images, z)
    except BaseException:
        stop.set()  # a failure or Ctrl-C: writers drop what is queued; files in progress finish atomically
        raise
    finally:
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        rep.advance(done0 + counts["images"])
        rep.stop()
    if failures:
        raise failures[0]
    return counts["images"], counts["bytes"], batch, rates


def _tune(backend: Backend, stream: _IndexStream, seed: int, emit) -> tuple[int, dict[int, float]]:
    """--batch-size auto: time real batches of growing size the way the run will make
    them (backend.map_images, so batches in flight count), keep the images (they are
    written like any others) and pick the fastest size; stop once two sizes in a row
    are slower, or when measuring further would take more than a tenth of the job's
    expected time. Each size gets two rounds of a few batches; the faster round counts,
    since the first may include one-off setup for a new shape."""
    cap = backend.max_batch or (BATCH_CANDIDATES[-1] if backend.device != "cpu" else 1024)
    rates: dict[int, float] = {}
    best, worse = None, 0
    t_start, total = time.perf_counter(), stream.left
    for size in (b for b in BATCH_CANDIDATES if b <= cap):
        need = 2 * _TUNE_BATCHES * size
        if stream.left < need:
            break
        if best is not None:
            # Measuring runs at sizes that are not the best, with the pipeline drained
            # between rounds: keep it to a small share of the job's expected time.
            spent = time.perf_counter() - t_start
            if spent + need / rates[best] > _TUNE_SHARE * total / rates[best]:
                break
        fastest = 0.0
        for _ in range(2):
            batches = [stream.take(size) for _ in range(_TUNE_BATCHES)]
            zs = [latents(seed, idx, backend.z_dim) for idx in batches]
            t0 = time.perf_counter()
            made = list(backend.map_images(zs))
            fastest = max(fastest, _TUNE_BATCHES * size / max(time.perf_counter() - t0, 1e-9))
            for idx, images, z in zip(batches, made, zs):
                emit(idx, images, z)
        rates[size] = fastest
        if best is None or rates[size] > rates[best]:
            best, worse = size, 0
        else:
            worse += 1
            if worse == 2:
                break
    if best is None:  # too few images to measure anything: one batch
        best = max(1, min(stream.left, cap))
    return best, rates


def _complete_job(out: Path, job: Job, writer: Writer, k: int, num_shards: int, rep: Reporter) -> bool:
    """Merge shard manifests when every shard is done; then preview.png and index.json."""
    with merge_lock(out):
        manifests = existing_manifests(out)
        parts = {name: m for name, m in manifests.items() if is_part_name(name) and not conflicts(m, job)}
        if num_shards > 1:
            mine = {name: m for name, m in parts.items() if m.get("num_shards") == num_shards}
            done = {m["shard"]["index"] for m in mine.values() if m.get("complete")}
            missing = sorted(set(range(num_shards)) - done)
            if missing:
                rep.info(f"shard {k}/{num_shards} is done; waiting for shard(s) {', '.join(map(str, missing))}: "
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
