"""`dcgan-rt train --eval-every N`: score the generator every N epochs during training.

Training tier (torch). A training-loop Callback: at the end of every N-th epoch (and
of the run) it scores the release generator the loop has just saved, on the images
z(0, 0..n-1) that `dcgan-rt evaluate MODEL -n n --seed 0` would make, and

- appends a row {"step", "epoch", "kimg", "eval/fid", "eval/digit_fd", ...} to
  metrics.jsonl (beside the loss rows; a resume drops rows past its checkpoint);
- redraws eval.png (the metrics over training) beside losses.png;
- copies generator.safetensors + generator.json to best/ whenever the run's best
  score improves, so runs/latest/best is a MODEL like any run directory.

"Best" is FID when FID is measured, else the digit Fréchet distance. Digit models
default to digit metrics only: Inception costs ~0.5 s an image on two CPU cores
(about 8 minutes per 1,000-image evaluation, longer than an epoch of mnist-5k),
while the digit classifier scores 1,000 images in well under a second. Its features
are trained on the same digits, so its Fréchet distance tracks what FID tracks here
(sharpness, which digits appear and how often) at a thousandth of the cost.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dcgan_rt.atomic import atomic_path, write_bytes
from dcgan_rt.errors import UsageError
from dcgan_rt.images import to_uint8
from dcgan_rt.train.callbacks import Callback, TrainState
from dcgan_rt.train.conditional import index_labels
from dcgan_rt.train.data import load_dataset
from dcgan_rt.train.evaluation import DIGIT_DATASETS, Evaluator, generator_batches, parse_metrics, real_subset
from dcgan_rt.train.loop import METRICS_FILE

BEST_DIR = "best"
PLOT_FILE = "eval.png"
DEFAULT_EVAL_IMAGES = 1000
_RELEASE_FILES = ("generator.safetensors", "generator.json")


def train_eval_metrics(text: str | None, dataset: str) -> tuple[str, ...]:
    """auto: digits for MNIST runs (cheap, see the module docstring), fid + kid otherwise;
    memorization (pixel arithmetic, seconds at most) for both."""
    if text is None or text == "auto":
        return ("digits", "memorization") if dataset in DIGIT_DATASETS else ("fid", "kid", "memorization")
    return parse_metrics(text, dataset)


def selection_metric(metrics: tuple[str, ...]) -> str:
    return "eval/fid" if "fid" in metrics else "eval/digit_fd" if "digits" in metrics else "eval/kid"


class EvalCallback(Callback):
    """Evaluate every `every` epochs; keep best/ by FID (or digit FD)."""

    def __init__(self, every: int, num_images: int = DEFAULT_EVAL_IMAGES, metrics: str | None = None,
                 inception: str | Path | None = None, seed: int = 0, log: Callable[[str], None] | None = None,
                 data: str | None = None):
        """`data` (the run's --data), when given, lets bad metric names or a missing
        Inception fail here, before the loop makes a run directory."""
        if every < 1:
            raise UsageError(f"--eval-every must be at least 1 (epochs), got {every}")
        if num_images < 2:
            raise UsageError(f"--eval-n must be at least 2, got {num_images}")
        if data is not None:
            chosen = train_eval_metrics(metrics, data)
            if "fid" in chosen or "kid" in chosen:
                from dcgan_rt.train.inception import default_inception_path

                if inception is None:
                    default_inception_path()
                elif not Path(inception).is_file():
                    raise UsageError(f"--inception {inception} not found")
        self.every, self.num_images, self.metrics_text = every, num_images, metrics
        self.inception, self.seed, self.log = inception, seed, log or (lambda text: None)
        self.evaluator: Evaluator | None = None
        self.key = ""
        self.best: float | None = None
        self.last_eval_step = -1

    def on_start(self, state: TrainState) -> None:
        opts = state.opts
        # The loop has already said what it skipped or converted: no second notice.
        data = load_dataset(opts.data, opts.img_resolution, opts.img_channels, opts.data_root, warn=lambda m: None,
                            crop=opts.crop)
        metrics = train_eval_metrics(self.metrics_text, data.name)
        self.key = selection_metric(metrics)
        self.evaluator = Evaluator(real_subset(data.images, None), data.name, metrics, self.inception,
                                   device="cuda" if torch.cuda.is_available() and opts.device != "cpu" else "cpu",
                                   log=self.log)
        previous = [r[self.key] for r in _eval_rows(state.run_dir) if self.key in r]
        self.best = min(previous) if previous else None  # a resumed run keeps its best

    def wants_snapshot(self, state: TrainState) -> bool:
        return state.epoch % self.every == 0  # score the generator of this very epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0 or state.step >= state.total_steps:
            self.evaluate(state)

    def on_end(self, state: TrainState) -> None:
        if self.last_eval_step != state.step:
            self.evaluate(state)

    def evaluate(self, state: TrainState) -> dict:
        generator = state.generator
        if generator is None or self.evaluator is None:
            return {}
        t0 = time.perf_counter()
        device = next(generator.parameters()).device
        was_training = generator.training
        generator.eval()

        spec = getattr(state, "label_spec", None)
        done = [0]  # images made so far: image i gets the label of index i

        @torch.inference_mode()
        def generate(z: np.ndarray) -> np.ndarray:
            z_t = torch.from_numpy(z).to(device)
            if spec is None:
                return to_uint8(generator(z_t).float().cpu().numpy())
            label = index_labels(spec, done[0], z.shape[0], self.seed).to(device)
            done[0] += z.shape[0]
            return to_uint8(generator(z_t, label).float().cpu().numpy())

        try:
            result = self.evaluator.score(generator_batches(generate, state.opts.z_dim, self.num_images, self.seed),
                                          self.num_images)
        finally:
            generator.train(was_training)
        row = {"step": state.step, "epoch": state.epoch + state.batch_in_epoch / state.steps_per_epoch,
               "kimg": state.cur_nimg / 1000, **result.flat(), "eval/num_images": self.num_images,
               "eval/seconds": round(time.perf_counter() - t0, 2), "time": round(time.time(), 3)}
        value = row.get(self.key)
        improved = value is not None and (self.best is None or value < self.best)
        if improved:
            self.best = value
            _copy_release(state.run_dir, state.run_dir / BEST_DIR)
        row["eval/best"] = improved
        with open(state.run_dir / METRICS_FILE, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        save_eval_plot(state.run_dir)
        self.last_eval_step = state.step
        shown = ", ".join(f"{k[5:]} {v:.4g}" for k, v in row.items()
                          if k.startswith("eval/") and k not in ("eval/best", "eval/num_images", "eval/seconds"))
        self.log(f"eval at step {state.step}: {shown}" + (" (best so far: saved to best/)" if improved else ""))
        return row


def _copy_release(run_dir: Path, best_dir: Path) -> None:
    """best/generator.safetensors + generator.json, each replaced atomically."""
    best_dir.mkdir(exist_ok=True)
    for name in _RELEASE_FILES:
        with atomic_path(best_dir / name) as tmp:
            shutil.copyfile(run_dir / name, tmp)


def _eval_rows(run_dir: Path) -> list[dict]:
    from dcgan_rt.train.plots import read_metrics

    return [r for r in read_metrics(run_dir / METRICS_FILE) if any(k.startswith("eval/") for k in r)]


_PANELS = (("eval/fid", "FID"), ("eval/kid", "KID"), ("eval/digit_fd", "digit FD"),
           ("eval/digits_recognised", "digits recognised"), ("eval/memorization", "memorization"))


def save_eval_plot(run_dir: Path) -> bool:
    """eval.png: each measured metric against the training step, the best point marked."""
    rows = _eval_rows(run_dir)
    panels = [(k, label) for k, label in _PANELS if any(k in r for r in rows)]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.6 * len(panels)), dpi=100, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, label) in zip(axes, panels):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*points), marker="o", lw=1, ms=3)
        best = [(r["step"], r[key]) for r in rows if key in r and r.get("eval/best")]
        if best and key == selection_metric_key(rows):
            ax.plot(*best[-1], marker="*", ms=12, color="tab:red", label="best/ (kept)")
            ax.legend(loc="upper right")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes(run_dir / PLOT_FILE, buf.getvalue())
    return True


def selection_metric_key(rows: list[dict]) -> str:
    keys = {k for r in rows for k in r}
    return "eval/fid" if "eval/fid" in keys else "eval/digit_fd" if "eval/digit_fd" in keys else "eval/kid"
