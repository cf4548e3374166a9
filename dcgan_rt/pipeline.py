"""The generation pipeline: backend batches -> bounded queue -> writer threads -> manifest.

Core tier (numpy + Pillow; the backend brings its own runtime). `generate()` is
what `dcgan-rt generate` runs:

1. the request (dcgan_rt.generate_request) was checked when it was made; the model
   and --out are checked before anything is written;
2. lock DIR (dcgan_rt.lock), let dcgan_rt.output_dir compare its manifest with this
   job (refuse another model or seed unless --overwrite), and list the images still
   missing, so a re-run (after Ctrl-C, kill -9 or a full disk) only makes those;
3. the main thread turns index batches into Batches (latents z(seed, i), labels) and
   runs the backend; a queue of a few batches feeds writer threads that encode and
   write atomically, so encoding and disk I/O overlap with inference; with
   --batch-size auto the first batches time sizes (dcgan_rt.batch_tuner);
4. the manifest is marked complete, then preview.png (the first 64 images) and,
   for npy, index.json are written (dcgan_rt.output_dir.complete_job).

Sharding: --shard K/N (or torchrun's RANK/WORLD_SIZE) takes the K-th of N
contiguous slices of the job's files. Each shard writes manifest.shard-K-of-N.json;
the last shard to finish merges them into one manifest.json (under a lock), so N
shards leave exactly what one unsharded run would.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan_rt.atomic import write_json
from dcgan_rt.backends import Backend, select_backend, source_sha256
from dcgan_rt.batch import Batch
from dcgan_rt.batch_tuner import IndexStream, tune_batch_size
from dcgan_rt.digest import file_memo, sha256_file
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.generate_request import GenerateRequest
from dcgan_rt.label_files import check_folder_names
from dcgan_rt.labels import LabelRule, make_rule
from dcgan_rt.latents import latents
from dcgan_rt.lock import OutputLock
from dcgan_rt.manifest import MANIFEST_NAME, Job, now, part_name, read_manifest, summarise_runs
from dcgan_rt.model_path import resolve_model
from dcgan_rt.output_dir import OutputDirError, check_out_dir, complete_job, prepare_dir, shard_range
from dcgan_rt.writers import IMAGES_PER_FILE, Writer, make_writer, ranges_count

__all__ = ["GenerateRequest", "GenerateResult", "Reporter", "generate"]
from dcgan_rt.provenance import PngText

_PROGRESS_SAVE_SECONDS = 10.0
LATENTS_PER_CALL = 256  # images whose latents are made at once (whole batches; at least one)


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


def generate(req: GenerateRequest, reporter: Reporter | None = None) -> GenerateResult:
    """Run (or resume) one generate job; see the module docstring."""
    with file_memo():  # the model file is hashed and parsed once, however often the job looks at it
        return _generate(req, reporter)


def _generate(req: GenerateRequest, reporter: Reporter | None) -> GenerateResult:
    rep = reporter or Reporter()
    shard, batch = req.job_shard(), req.batch_size
    resolved = resolve_model(req.model)
    out = req.out
    check_out_dir(out)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) if shard else 1
    threads = max(1, usable_cores() // local_world) if local_world > 1 else None
    gpu = req.gpu if req.gpu is not None else (int(os.environ.get("LOCAL_RANK", "0") or 0) if shard else None)
    backend = select_backend(resolved, req.backend, gpu=gpu, threads=threads, precision=req.precision)
    with backend:
        rep.info(f"backend: {backend.describe()}; {backend.reason}")
        if batch is not None and backend.max_batch is not None and batch > backend.max_batch:
            raise UsageError(f"--batch-size {batch} is above this model's maximum batch {backend.max_batch}")
        rule = make_rule(backend.card, req.labels, req.start, req.n)  # refuses labels the model cannot take
        if req.layout == "by-class":
            check_folder_names(rule)
        cfg = backend.card.model_config
        c, h, w = cfg.image_shape
        model_sha = sha256_file(resolved.path)
        job = Job(
            model_path=str(resolved.path.resolve()), model_kind=resolved.kind, model_sha256=model_sha,
            weights_sha256=source_sha256(resolved) or model_sha, precision=backend.precision,
            model_card=backend.card.to_dict(), seed=req.seed, start=req.start, count=req.n, format=req.format,
            save_latents=bool(req.save_latents), images_per_file=None if req.format == "png" else IMAGES_PER_FILE,
            image_shape=(h, w, c), z_dim=cfg.z_dim, labels=rule.to_manifest() if rule else None, layout=req.layout,
        )
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(f"cannot create --out {out} ({exc.strerror}): choose a writable directory") from None
        try:
            return _run_job(job, rule, out, backend, batch, shard or (0, 1), req.overwrite, rep)
        except OSError as exc:  # disk full, quota, file size limit, a vanished mount...
            # numpy reports a short write with no errno ("256000 requested and 199872 written")
            reason = exc.strerror or f"short write: {exc}"
            raise OutputDirError(
                f"cannot write to {out} ({reason}); the file being written was removed and finished files are "
                "kept: free some space (or fix the folder) and run the same command again to resume"
            ) from exc


def _run_job(job: Job, rule: LabelRule | None, out: Path, backend: Backend, batch: int | None,
             shard: tuple[int, int], overwrite: bool,
             rep: Reporter) -> GenerateResult:
    k, num_shards = shard
    with OutputLock(out, k, num_shards):
        writer = make_writer(job.format, out, job.image_shape, job.z_dim, job.save_latents, (job.start, job.end),
                             rule, job.seed, job.layout, png_text=PngText(job.provenance))
        lo, hi = shard_range(job.start, job.count, k, num_shards, writer.unit)
        if num_shards > 1:
            rep.info(f"shard {k}/{num_shards}: images {lo}..{hi - 1} of {job.start}..{job.end - 1}")
        prepare_dir(out, job, writer, overwrite, k, num_shards, lo, hi, rep.info)

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
        written, nbytes, batch_used, rates = _produce(backend, writer, _batch_maker(job, rule, backend), pending, batch, rep,
                                                      total=hi - lo, done0=skipped,
                                                      checkpoint=lambda done: save(False, done))
        seconds = time.perf_counter() - t0
        if writer.unfinished() or writer.pending(lo, hi, verify=False):
            raise DcganRtError(
                f"internal error: images {lo}..{hi - 1} are not all in {out} after the run; re-run to finish"
            )
        run.update(generated=written, batch_size=batch_used, seconds=round(seconds, 3), finished=now())
        save(True, hi - lo)
        complete = complete_job(out, job, writer, k, num_shards, rep.info)
    return GenerateResult(out=out, job_images=job.count, shard_images=hi - lo, generated=written, skipped=skipped,
                          seconds=seconds, bytes_written=nbytes, backend=backend.describe(),
                          batch_size=batch_used, batch_rates=rates, complete=complete)



def _batch_maker(job: Job, rule: LabelRule | None, backend: Backend) -> Callable[[np.ndarray], Batch]:
    """indices -> the Batch the backend runs: latents z(seed, i) and labels y(seed, i) (docs/latents.md)."""
    def make(indices: np.ndarray) -> Batch:
        labels = None if rule is None else rule.labels(job.seed, indices)
        return Batch(indices, latents(job.seed, indices, backend.z_dim), labels)

    return make


def _writer_threads(writer: Writer) -> int:
    if writer.format == "npy":
        return 1  # copying into a shard buffer is cheap; np.save is one big write
    return max(2, min(4, usable_cores()))


def _produce(backend: Backend, writer: Writer, make_batch: Callable[[np.ndarray], Batch],
             pending: list[tuple[int, int]], batch: int | None, rep: Reporter, total: int, done0: int,
             checkpoint: Callable[[int], None]):
    """Run the backend over the pending indices and write everything; returns
    (images written, bytes written, batch size used, measured rates)."""
    stream = IndexStream(pending)
    if stream.left == 0:
        return 0, 0, batch or 0, {}
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
                nbytes = writer.write_batch(*item)  # (Batch, images)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                stop.set()
                continue
            with lock:
                counts["images"] += len(item[1])
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

    def emit(work_batch: Batch, images: np.ndarray) -> None:
        item = (work_batch, images)
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
            batch, rates = tune_batch_size(backend, stream, make_batch, emit)
            measured = ", ".join(f"{b}: {r:,.0f}/s" for b, r in rates.items())
            why = (f"images/s measured at {measured}" if rates else
                   f"not measured: {stream.left:,} images are too few to compare batch sizes")
            rep.info(f"batch size auto: {batch} ({why})")
            rep.label(label.format(batch))
        in_flight: deque = deque()

        def batches():
            # Latents (and labels) for several small batches in one call: the same values
            # (a pure function of the index), a tenth of the per-call numpy overhead, which
            # at batch 16 was ~3% of the main thread's time beside the two busy cores.
            per_call = batch * max(1, LATENTS_PER_CALL // batch)
            while (idx := stream.take(per_call)) is not None:
                chunk = make_batch(idx)
                for start in range(0, len(chunk), batch):
                    in_flight.append(chunk.take(start, start + batch))
                    yield in_flight[-1]

        for images in backend.map_images(batches()):
            emit(in_flight.popleft(), images)
    except BaseException:
        stop.set()  # a failure or Ctrl-C: writers drop what is queued; files in progress finish atomically
        raise
    finally:
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        if stop.is_set():
            writer.discard_unfinished()
        rep.advance(done0 + counts["images"])
        rep.stop()
    if failures:
        raise failures[0]
    return counts["images"], counts["bytes"], batch, rates
