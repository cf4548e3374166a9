"""The DCGAN training loop: options and data checked, run directory, steps, logging, stops.

Training tier (torch). `train_run(opts)` validates everything (options, data,
output folder) before it makes a run directory, writes train_config.json before
step 0, and then trains; at each snapshot (--snapshot-kimg, and always at the end) the
Trainer's `Snapshots` half (dcgan_rt.train.snapshots) writes a sample grid of fixed
latents, checkpoint.pt and the release artifact (generator.safetensors + generator.json,
the EMA generator). At the end it draws the progression strip and GIF, real vs
generated, and the loss curves.

Progress and extra per-step / per-epoch work (an evaluation, a dashboard) plug in as
`Callback`s (dcgan_rt.train.callbacks). Data order is a pure function of (seed, epoch)
(dcgan_rt.train.batches) and every RNG state is checkpointed, so on the CPU N epochs in
one go and N/2 + `--resume` + N/2 give the same weights. SIGINT stops at the next step
boundary with a checkpoint; a non-finite loss stops before the bad weights reach a
checkpoint.

Under torchrun every rank runs `train_run` (docs/distributed.md): G and D are wrapped
in DistributedDataParallel, each rank trains on its share of every global batch
(dcgan_rt.train.distributed), and rank 0 alone writes the run directory and reports.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from dcgan_rt.errors import DcganRtError, NumericalError, UsageError
from dcgan_rt.train import plots
from dcgan_rt.train.augment import ADA_INTERVAL, AugmentPipe
from dcgan_rt.train.batches import make_labelled_batches
from dcgan_rt.train.callbacks import Callback, TrainState
from dcgan_rt.train.conditional import LabelSpec, resolve_labels
from dcgan_rt.train.data import TrainData, load_dataset, steps_per_epoch
from dcgan_rt.train.defaults import resolve_for_data
from dcgan_rt.train.distributed import (
    SINGLE, RankBatchSampler, World, any_rank, distributed_session, mean_over_ranks, rank_batch_size, run_on_main,
    wrap_ddp, write_rank_digests,
)
from dcgan_rt.train.ema import GeneratorEMA
from dcgan_rt.train.loss import DCGANLoss
from dcgan_rt.train.networks import build_discriminator, build_generator, code_index
from dcgan_rt.train.options import TrainOptions
from dcgan_rt.train.placement import autocast_dtype, resolve_device, sync_bn_keeps_d_local, wrap_models
from dcgan_rt.train.run_config import write_run_config
from dcgan_rt.train.rundir import create_run_dir, run_desc, update_latest
from dcgan_rt.train.snapshots import SAMPLES_DIR, Snapshots, fixed_samples, read_resume

METRICS_FILE = "metrics.jsonl"


def with_label_counts(opts: TrainOptions, spec: LabelSpec | None) -> TrainOptions:
    """opts with num_classes / num_attrs from the data's labels (ModelConfig's label sizes).
    A resumed run must find the labels it was trained on."""
    if spec is None:
        return opts
    if (opts.num_classes or opts.num_attrs) and (opts.num_classes, opts.num_attrs) != (spec.num_classes, spec.num_attrs):
        raise UsageError(f"the run was trained on {opts.num_classes or opts.num_attrs} labels and --data "
                         f"{opts.data} now has {len(spec.names)}: resume on the data the run started with")
    return opts.replace(num_classes=spec.num_classes, num_attrs=spec.num_attrs)


class TrainingInterrupted(DcganRtError):
    """Ctrl-C: the run stopped at a step boundary and saved a checkpoint."""

    exit_code = 130

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved in {run_dir}: "
                         f"continue with dcgan-rt train --resume {run_dir}")
        self.run_dir, self.step = run_dir, step


class _Averages:
    """Sums of per-step scalars kept on the device; one host sync per log interval."""

    KEYS = ("loss_d", "loss_g", "d_real", "d_fake", "loss_code", "augment_p")

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(self.KEYS), device=device, dtype=torch.float64)
        self.count = 0

    def add(self, values: torch.Tensor) -> None:
        self.sums += values.detach().double()
        self.count += 1

    def pop(self, world: World = SINGLE) -> dict[str, float]:
        means = mean_over_ranks(self.sums / max(self.count, 1), world).tolist()
        self.sums.zero_()
        self.count = 0
        return dict(zip(self.KEYS, means))


class _StopFlag:
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one aborts."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer(Snapshots):
    """One run: models, optimizers, EMA, counters, and the files in its run directory."""

    def __init__(self, opts: TrainOptions, data: TrainData, run_dir: Path, device: torch.device,
                 callbacks: Sequence[Callback] = (), world: World = SINGLE):
        opts = resolve_for_data(opts, data.num_images)  # idempotent: train_run has resolved them already
        self.label_spec, self.labels = resolve_labels(data, opts) if opts.conditional else (None, None)
        opts = with_label_counts(opts, self.label_spec)
        self.opts, self.data, self.run_dir, self.device = opts, data, run_dir, device
        self.world = world
        self.callbacks = list(callbacks) if world.is_main else []
        cfg = opts.model_config
        torch.manual_seed(opts.seed)
        g, d = build_generator(cfg), build_discriminator(cfg, cond_d=opts.cond_d)
        self.ema = GeneratorEMA(g, opts.ema_kimg, opts.ema_rampup) if opts.ema_kimg > 0 else None
        self.g, self.d = wrap_models(g, d, device, opts, world)
        # self.g / self.d stay the plain networks (checkpoints, samples, export); the
        # DDP wrappers, which average gradients over ranks, are used for training steps only.
        self.g_train, self.d_train = wrap_ddp(self.g, device, world), wrap_ddp(self.d, device, world)
        self.sampler = (RankBatchSampler(data.num_images, opts.batch_size, opts.seed, world)
                        if world.distributed else None)
        if self.ema is not None:
            self.ema.module.to(device)
        betas = (opts.beta1, opts.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=opts.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=opts.lr_d, betas=betas)
        self.amp_dtype = autocast_dtype(device, opts)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.augment = (AugmentPipe(opts.augment, device, opts.seed + 2, opts.ada_kimg)
                        if opts.augment != "off" else None)
        self.loss = DCGANLoss(self.d_train, self.d, opts, self.augment, self.scaler, self._autocast)
        if world.is_main and sync_bn_keeps_d_local(opts) and world.distributed:
            for cb in self.callbacks:
                cb.message("--sync-bn with the R1 penalty: G's BatchNorm is synchronised, D's stays per rank "
                           "(SyncBatchNorm has no double backward, which R1 needs; --r1-gamma 0 syncs both)")
        self.noise = torch.Generator(device=device).manual_seed(opts.seed + 1)
        spe = steps_per_epoch(data.num_images, opts.batch_size)
        self.state = TrainState(run_dir, opts, spe, opts.total_steps(spe), label_spec=self.label_spec)
        self._snapshot_nimg = 0  # images seen at the last sample grid + checkpoint
        self.sample_z, self.sample_labels, self.grid_cols = fixed_samples(opts, self.label_spec)

    # -- one optimisation step ----------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def lr_scale(self, step: int) -> float:
        """The learning rates' factor at `step`: 1, then falling linearly to 0 at the run's end over
        its last lr_rampdown (a settled generator at the end has fewer stray specks)."""
        ramp = self.opts.lr_rampdown * self.state.total_steps
        if ramp <= 0:
            return 1.0
        return min(1.0, (self.state.total_steps - step) / ramp)

    def train_step(self, real: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """One D update and one G update (the objective is dcgan_rt.train.loss); `label`: the
        real batch's labels (conditional runs), which the generated batch is made with. Returns
        [loss_D, loss_G, mean D(x), mean D(G(z)), loss_code, augment p] as a tensor (no host sync)."""
        world = self.world
        # Every rank draws the whole global batch's latents and keeps its rows, so the
        # noise stream (and the checkpointed RNG state) does not depend on the world size.
        z = torch.randn(real.shape[0] * world.world_size, self.opts.z_dim, device=self.device, generator=self.noise)
        if world.distributed:
            z = z[world.rank::world.world_size]
        code = code_index(z, self.opts.code_dim) if self.opts.code_dim else None
        r1 = self.opts.r1_gamma > 0 and self.state.step % self.opts.r1_every == 0
        if self.opts.lr_rampdown > 0:
            self._set_lr(self.lr_scale(self.state.step))
        with self._autocast():
            fake = self.g_train(z) if label is None else self.g_train(z, label)  # (B, C, H, W)
        loss_d, d_real, d_fake, loss_code = self.loss.discriminator_loss(real, fake, code, r1, label)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        # G step: gradients flow through D to the images only; D's weight gradients are
        # not needed, and skipping them saves a third of this backward pass.
        self.d.requires_grad_(False)
        loss_g = self.loss.generator_loss(fake, code, label)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.d.requires_grad_(True)

        batch = real.shape[0] * world.world_size  # the global batch: every rank steps alike
        self.state.cur_nimg += batch
        if self.ema is not None:
            self.ema.update(self.g, batch, self.state.cur_nimg)
        p = self.augment.p if self.augment is not None else loss_d.new_zeros(())
        if self.augment is not None and (self.state.step + 1) % ADA_INTERVAL == 0:
            self.augment.update(batch, (lambda t: mean_over_ranks(t, world)) if world.distributed else None)
        with torch.no_grad():
            return torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real.detach()).mean(),
                                torch.sigmoid(d_fake.detach()).mean(), loss_code.detach(), p.float()])

    # -- the loop -------------------------------------------------------------------------

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)

    def _log(self, averages: _Averages, metrics_fh, seconds: float, images: int) -> None:
        s = self.state
        values = averages.pop(self.world)  # averaged over ranks: every rank sees the same values
        s.images_per_s = images * self.world.world_size / seconds if seconds > 0 else 0.0
        s.metrics = values
        bad = [k for k in ("loss_d", "loss_g") if not math.isfinite(values[k])]
        if bad:
            self._numerical_failure(bad[0], values[bad[0]])
        row = {"step": s.step, "epoch": s.epoch + s.batch_in_epoch / s.steps_per_epoch, "kimg": s.cur_nimg / 1000,
               **{k: round(v, 6) for k, v in values.items()}, "images_per_s": round(s.images_per_s, 1),
               "time": round(time.time(), 3)}
        if metrics_fh is not None:
            metrics_fh.write(json.dumps(row) + "\n")
            metrics_fh.flush()
        self._emit("on_log")

    def _numerical_failure(self, name: str, value: float) -> None:
        s = self.state
        if (self.run_dir / "checkpoint.pt").is_file():
            kept = f"the last good checkpoint in {self.run_dir} is kept"
        else:
            kept = "no checkpoint had been written yet"
        raise NumericalError(f"{name} became {value} at step {s.step}: training diverged (try lower learning rates, "
                             f"e.g. --lr-g/--lr-d 1e-4); {kept}")

    def _stop_requested(self, stop: _StopFlag, logged: bool) -> bool:
        """Ctrl-C seen. Under torchrun the ranks agree at log steps, so all stop at the same step."""
        if not self.world.distributed:
            return stop.requested
        return logged and any_rank(stop.requested, self.world, self.device)

    def save_epoch_outputs_main(self, epoch_number: int) -> None:
        if self.world.is_main:
            self.save_epoch_outputs(epoch_number)

    def run(self) -> TrainState:
        s, opts = self.state, self.opts
        main = self.world.is_main
        if main:
            (self.run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
            _truncate_metrics(self.run_dir / METRICS_FILE, s.step)
        self._emit("on_start")
        averages = _Averages(self.device)
        metrics_file = open(self.run_dir / METRICS_FILE, "a") if main else contextlib.nullcontext()
        with metrics_file as metrics_fh, _StopFlag() as stop:
            interval_start, interval_images = time.perf_counter(), 0
            while s.step < s.total_steps:
                for real, label in make_labelled_batches(self.data, self.device, opts, s.epoch, s.batch_in_epoch,
                                                         self.sampler, self.labels):
                    averages.add(self.train_step(real, label))
                    s.step += 1
                    s.batch_in_epoch += 1
                    interval_images += real.shape[0]
                    logged = s.step % opts.log_every == 0 or s.step == s.total_steps
                    if logged:
                        self._log(averages, metrics_fh, time.perf_counter() - interval_start, interval_images)
                        interval_start, interval_images = time.perf_counter(), 0
                    if self._stop_requested(stop, logged):
                        if averages.count:
                            self._log(averages, metrics_fh, time.perf_counter() - interval_start, interval_images)
                        self.save_epoch_outputs_main(s.epoch + 1)
                        raise TrainingInterrupted(self.run_dir, s.step)
                    if s.step >= s.total_steps:
                        break
                if s.batch_in_epoch >= s.steps_per_epoch:
                    s.epoch += 1
                    s.batch_in_epoch = 0
                    epoch_number = s.epoch
                else:
                    epoch_number = s.epoch + 1  # --steps ended inside an epoch
                if averages.count:  # log (and check for NaN) before anything is saved
                    self._log(averages, metrics_fh, time.perf_counter() - interval_start, interval_images)
                    interval_start, interval_images = time.perf_counter(), 0
                t = time.perf_counter()
                if (s.step >= s.total_steps or s.cur_nimg - self._snapshot_nimg >= opts.snapshot_kimg * 1000
                        or any(cb.wants_snapshot(s) for cb in self.callbacks)):
                    self.save_epoch_outputs_main(epoch_number)
                    self._snapshot_nimg = s.cur_nimg
                self._emit("on_epoch_end")
                interval_start += time.perf_counter() - t  # saving is not training time
        write_rank_digests(self.world, s.step, {"G": self.g, "D": self.d,
                                                "G_ema": self.ema.module if self.ema is not None else None})
        if main:
            self.finish()
        self._emit("on_end")
        return s

    def finish(self) -> None:
        """The end-of-run pictures (also fine to call after an interruption)."""
        plots.write_run_plots(self.run_dir, self.data, self.opts)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past `step` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    keep = [r for r in plots.read_metrics(path) if r.get("step", 0) <= step]
    from dcgan_rt.atomic import write_text

    write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def train_run(opts: TrainOptions, resume: str | Path | None = None, callbacks: Sequence[Callback] = (),
              on_run_dir: Callable[[Path], None] | None = None) -> TrainState:
    """Train (or continue) a run; returns its final state. `on_run_dir` is told the run
    directory as soon as it exists (the CLI prints it).

    Under torchrun every rank calls this: rank 0 alone reads the checkpoint (and hands it
    to the others), makes the run directory, writes into it and runs the callbacks."""
    device = resolve_device(opts.device)
    with distributed_session(device) as (world, device):
        if not world.is_main:
            callbacks, on_run_dir = (), None
        rank_batch_size(opts.batch_size, world)
        return _train_run(opts, resume, callbacks, on_run_dir, device, world)



def _train_run(opts: TrainOptions, resume: str | Path | None, callbacks: Sequence[Callback],
               on_run_dir: Callable[[Path], None] | None, device: torch.device, world: World) -> TrainState:
    messages = [cb.message for cb in callbacks]

    def warn(text: str) -> None:
        for m in messages:
            m(text)

    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = run_on_main(world, lambda: read_resume(run_dir))
    data = load_dataset(opts.data, opts.img_resolution, opts.img_channels, opts.data_root, warn=warn, crop=opts.crop)
    if ckpt is None:
        opts = resolve_for_data(opts, data.num_images)  # length and augmentation: recorded as resolved
    if opts.conditional:  # the data's labels, checked before anything is written
        opts = with_label_counts(opts, resolve_labels(data, opts)[0])
    spe = steps_per_epoch(data.num_images, opts.batch_size)
    if spe < 1:
        raise UsageError(f"--batch-size {opts.batch_size} is larger than the data set ({data.num_images} images): "
                         "lower --batch-size or add images")
    if ckpt is not None:
        done, total = int(ckpt["step"]), opts.total_steps(spe)
        if done >= total:
            raise UsageError(f"{run_dir} has already trained {done} of {total} steps: pass a larger --epochs or "
                             "--steps to train further")

    def make_run_dir() -> Path:
        if ckpt is not None:
            made = run_dir.resolve()
        else:
            made = create_run_dir(opts.out, run_desc(data.name, opts.img_resolution))
        write_run_config(made, opts, data, device, spe, resumed_from_step=int(ckpt["step"]) if ckpt else None, world=world)
        if ckpt is None:
            update_latest(made)
        return made

    run_dir = run_on_main(world, make_run_dir)  # the other ranks learn its path from rank 0
    if on_run_dir:
        on_run_dir(run_dir)
    trainer = Trainer(opts, data, run_dir, device, callbacks, world)
    if ckpt is not None:
        trainer.load(ckpt)
    return trainer.run()
