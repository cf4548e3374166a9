"""`dcgan-rt train`: train a DCGAN and write a run directory (DESIGN §7).

CLI tier. Options default to None so a resumed run can tell what the user asked to
change; the recipe's real defaults live in dcgan_rt.train.options.TrainOptions.
torch is imported inside the command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from dcgan_rt.cli.common import console, err_console, handle_errors, is_tty
from dcgan_rt.train.defaults import MAX_KIMG, MIN_KIMG, SMALL_RES_KIMG
from dcgan_rt.train.options import DEFAULT_EPOCHS, TrainOptions

D = TrainOptions()


def _opt(*names: str, help: str, default, **kw):
    """Options default to None (so a resumed run knows what was given); `default` is
    what --help shows, the recipe's value from TrainOptions."""
    return typer.Option(*names, help=help, show_default=str(default), **kw)


@handle_errors
def train(
    data: Annotated[Optional[str], _opt("--data", help="mnist-5k (built-in digits), orl (built-in faces; both offline), mnist, celeba, or a folder of images.", default=D.data)] = None,
    data_root: Annotated[Optional[Path], _opt("--data-root", help="Where mnist/celeba files are (or get downloaded to).", default="~/.cache/dcgan-rt/datasets")] = None,
    crop: Annotated[Optional[int], _opt("--crop", help="Centred square cut from each image before resizing, in pixels (0: the largest).", default="108 for celeba, else 0")] = None,
    out: Annotated[Optional[Path], _opt("--out", help="Folder for run directories.", default=D.out)] = None,
    epochs: Annotated[Optional[int], _opt("--epochs", help="Total epochs to train.", default=f"below 64 px {SMALL_RES_KIMG:g} thousand images; else {DEFAULT_EPOCHS}, within {MIN_KIMG:g}-{MAX_KIMG:g} thousand")] = None,
    steps: Annotated[Optional[int], _opt("--steps", help="Total optimizer steps instead of --epochs.", default="none: --epochs decides")] = None,
    kimg: Annotated[Optional[float], _opt("--kimg", help="Total thousands of images instead of --epochs.", default="none: --epochs decides")] = None,
    img_resolution: Annotated[Optional[int], _opt("--img-resolution", help="16, 32, 64 or 128.", default=f"{D.img_resolution}; orl, celeba: 64")] = None,
    img_channels: Annotated[Optional[int], _opt("--img-channels", help="1 (grayscale) or 3 (RGB).", default=f"{D.img_channels}; celeba: 3")] = None,
    batch_size: Annotated[Optional[int], _opt("--batch-size", help="Images per step.", default=D.batch_size)] = None,
    z_dim: Annotated[Optional[int], _opt("--z-dim", help="Latent size.", default=D.z_dim)] = None,
    g_width: Annotated[Optional[int], _opt("--g-width", help="Generator channels at full resolution (ngf).", default=D.g_width)] = None,
    d_width: Annotated[Optional[int], _opt("--d-width", help="Discriminator channels at full resolution (ndf).", default=D.d_width)] = None,
    g_out_bias: Annotated[Optional[bool], _opt("--g-out-bias/--no-g-out-bias", help="A learned bias on the generator's output layer (pytorch/examples' DCGAN has none); it keeps image borders as dark as the data's.", default="on below 64 px, off at 64 px and up")] = None,
    lr_g: Annotated[Optional[float], _opt("--lr-g", help="Generator Adam learning rate.", default=D.lr_g)] = None,
    lr_d: Annotated[Optional[float], _opt("--lr-d", help="Discriminator Adam learning rate.", default=D.lr_d)] = None,
    lr_rampdown: Annotated[Optional[float], _opt("--lr-rampdown", help="Over the last this fraction of the run both learning rates fall linearly to 0 (0: off).", default=f"{D.lr_rampdown:g}; 0 at 64 px and up")] = None,
    beta1: Annotated[Optional[float], _opt("--beta1", help="Adam beta1.", default=D.beta1)] = None,
    beta2: Annotated[Optional[float], _opt("--beta2", help="Adam beta2.", default=D.beta2)] = None,
    label_smoothing: Annotated[Optional[float], _opt("--label-smoothing", help="One-sided: D's target for real images is 1 minus this.", default=D.label_smoothing)] = None,
    code_dim: Annotated[Optional[int], _opt("--code-dim", help="InfoGAN categorical code: the first N entries of z pick one of N kinds of image (0: plain DCGAN).", default=f"{D.code_dim}; 0 with --conditional")] = None,
    info_lambda: Annotated[Optional[float], _opt("--info-lambda", help="Weight of the InfoGAN code loss.", default=D.info_lambda)] = None,
    d_mu_law: Annotated[Optional[float], _opt("--d-mu-law", help="D sees every image through a mu-law compander of brightness with this mu, which makes faint specks in a black background stand out (0: off).", default=f"{D.d_mu_law:g}; 0 at 64 px and up")] = None,
    r1_gamma: Annotated[Optional[float], _opt("--r1-gamma", help="Weight of the R1 penalty on D's gradient at real images (0: off).", default=f"{D.r1_gamma}; 0.1 at 64 px and up")] = None,
    r1_every: Annotated[Optional[int], _opt("--r1-every", help="Apply the R1 penalty every N steps (lazy regularisation).", default=D.r1_every)] = None,
    ema_kimg: Annotated[Optional[float], _opt("--ema-kimg", help="Half-life of the generator EMA in thousands of images (0: off); at most 30 % (at 64 px and up 5 %) of the images seen.", default=f"{D.ema_kimg:g}; 20 at 64 px and up")] = None,
    augment: Annotated[Optional[str], _opt("--augment", help="Augment every image D sees (real and generated, differentiably): off, diffaug (always), ada (adaptive probability); auto: ada below 2,000 images.", default=D.augment)] = None,
    ada_kimg: Annotated[Optional[float], _opt("--ada-kimg", help="ADA: thousands of images for its probability to go from 0 to 1.", default=D.ada_kimg)] = None,
    device: Annotated[Optional[str], _opt("--device", help="auto, cpu or cuda.", default=D.device)] = None,
    amp: Annotated[Optional[bool], _opt("--amp/--no-amp", help="Mixed precision on CUDA.", default="on")] = None,
    sync_bn: Annotated[Optional[bool], _opt("--sync-bn/--no-sync-bn", help="Under torchrun on GPUs: BatchNorm statistics over the global batch, not each rank's share (docs/distributed.md).", default="off")] = None,
    snapshot_kimg: Annotated[Optional[float], _opt("--snapshot-kimg", help="Sample grid, checkpoint and generator at the first epoch end after this many thousand images (0: every epoch).", default=D.snapshot_kimg)] = None,
    conditional: Annotated[Optional[bool], _opt("--conditional/--no-conditional", help="Train on the data's labels: digit classes (mnist-5k, mnist), people (orl), class subfolders of a folder, or CelebA attributes with --attrs; generate then takes a label (docs/training.md).", default="off")] = None,
    attrs: Annotated[Optional[str], _opt("--attrs", help="With --conditional on celeba: the attributes to condition on, e.g. Smiling,Male,Eyeglasses.", default="none")] = None,
    cond_d: Annotated[Optional[str], _opt("--cond-d", help="How D reads the label: projection (Miyato & Koyama 2018) or acgan (auxiliary classifier).", default=D.cond_d)] = None,
    resume: Annotated[Optional[Path], _opt("--resume", help="Continue this run directory from its checkpoint.", default="none: a new run")] = None,
    seed: Annotated[Optional[int], _opt("--seed", help="Seed for weights, data order, noise and sample latents.", default=D.seed)] = None,
    eval_every: Annotated[int, _opt("--eval-every", help="Every N epochs (and at the end) score the generator, log it to metrics.jsonl and eval.png, keep the best in best/ (docs/evaluate.md); 0: off.", default=0)] = 0,
    eval_n: Annotated[int, _opt("--eval-n", help="Images per --eval-every evaluation.", default=1000)] = 1000,
    eval_metrics: Annotated[str, _opt("--eval-metrics", help="Comma list of fid, kid, digits, memorization; auto: digits,memorization for MNIST runs (cheap), fid,kid,memorization otherwise.", default="auto")] = "auto",
) -> None:
    """Train a DCGAN; writes runs/NNNNN-<desc>/ (checkpoint, generator.safetensors, samples, plots)."""
    # The parameters named like TrainOptions' fields are its options (None: not given).
    given = {k: str(v) if isinstance(v, Path) else v for k, v in locals().items()
             if k in TrainOptions.names() and k not in ("data", "out")}
    from dcgan_rt.extras import require_train

    require_train("dcgan-rt train")
    from dcgan_rt import api

    # Bad options fail here (a new run's before torch is imported): an instant, one-line answer.
    opts = api.train_options(data, out=out, resume=resume, **given)

    from dcgan_rt.train.distributed import world_from_env
    from dcgan_rt.train.loop import TrainingInterrupted

    main = world_from_env().is_main  # under torchrun only rank 0 reports

    progress = (TtyProgress() if is_tty() else PlainProgress()) if main else _Base()
    callbacks = [progress]
    if eval_every < 0:
        from dcgan_rt.errors import UsageError

        raise UsageError(f"--eval-every must be 0 (off) or a number of epochs, got {eval_every}")
    if eval_every and main:  # one process scores and keeps best/
        from dcgan_rt.train.eval_hook import EvalCallback

        callbacks.append(EvalCallback(eval_every, eval_n, eval_metrics, data=opts.data,
                                      log=lambda text: console.print(text, highlight=False, soft_wrap=True)))
    start = time.perf_counter()
    try:
        with progress:
            result = api.train(data, out=out, resume=resume, callbacks=callbacks, on_run_dir=progress.announce,
                               **given)
    except TrainingInterrupted as exc:
        if main:
            err_console.print(f"[yellow]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if not main:
        return
    minutes = (time.perf_counter() - start) / 60
    console.print(f"done: {result.steps} steps ({result.images:,} images) in {minutes:.1f} min; "
                  f"generator: {result.generator}", highlight=False, soft_wrap=True)
    console.print(str(result.run_dir), highlight=False, soft_wrap=True)


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _metrics_text(state) -> str:
    m = state.metrics
    if not m:
        return ""
    code = f"  loss_code {m['loss_code']:.3f}" if state.opts.code_dim else ""
    return (f"loss_D {m['loss_d']:.3f}  loss_G {m['loss_g']:.3f}{code}  D(x) {m['d_real']:.2f}  "
            f"D(G(z)) {m['d_fake']:.2f}  {state.images_per_s:,.0f} img/s")


class _Base:
    """A loop Callback (duck-typed: the loop only calls these methods)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.step0 = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def announce(self, run_dir: Path) -> None:
        console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        err_console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)

    def eta(self, state) -> float:
        done = state.step - self.step0
        if done <= 0:
            return 0.0
        return (time.perf_counter() - self.t0) / done * (state.total_steps - state.step)

    def on_start(self, state) -> None:
        self.t0, self.step0 = time.perf_counter(), state.step
        o = state.opts
        cfg = o.model_config
        console.print(
            f"training on {o.data} ({state.steps_per_epoch * o.batch_size:,} images/epoch) at {cfg.img_resolution}px, "
            f"{state.total_epochs} epochs = {state.total_steps} steps of {o.batch_size}"
            + (f", from step {state.step}" if state.step else ""), highlight=False, soft_wrap=True)

    def on_log(self, state) -> None: ...

    def on_epoch_end(self, state) -> None: ...

    def on_end(self, state) -> None: ...

    def wants_snapshot(self, state) -> bool:
        return False


class PlainProgress(_Base):
    """Log lines for pipes and files: one per epoch, and at most one every 30 s in between."""

    def __init__(self):
        super().__init__()
        self.last = 0.0

    def _line(self, state) -> None:
        self.last = time.perf_counter()
        console.print(f"epoch {state.epoch + (1 if state.batch_in_epoch else 0)}/{state.total_epochs} "
                      f"step {state.step}/{state.total_steps}  {_metrics_text(state)}  ETA {_fmt_eta(self.eta(state))}",
                      highlight=False, soft_wrap=True)

    def on_log(self, state) -> None:
        if time.perf_counter() - self.last >= 30:
            self._line(state)

    def on_epoch_end(self, state) -> None:
        if time.perf_counter() - self.last >= 5 or state.step >= state.total_steps:  # small sets: many short epochs
            self._line(state)


class TtyProgress(_Base):
    """A rich progress bar with the losses, D's outputs, images/s and ETA."""

    def __init__(self):
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def announce(self, run_dir: Path) -> None:
        self.progress.console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)

    def on_start(self, state) -> None:
        super().on_start(state)
        self.task = self.progress.add_task("train", total=state.total_steps, completed=state.step,
                                           epoch=f"{state.epoch + 1}/{state.total_epochs}", metrics="")

    def on_log(self, state) -> None:
        epoch = min(state.epoch + 1, state.total_epochs)
        self.progress.update(self.task, completed=state.step, epoch=f"{epoch}/{state.total_epochs}",
                             metrics=_metrics_text(state))
