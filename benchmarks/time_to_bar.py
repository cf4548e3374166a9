"""Time to the digit quality bar: `python benchmarks/bench_train.py --to-bar`.

Trains digit recipes on mnist-5k in this process, one after the other (the real
`Trainer`, run directories in a temporary folder), and every `eval_kimg` thousand
images scores the generator that run would release at that point (the EMA generator
with its BatchNorm statistics measured, as `generator.safetensors` holds it) on the
latents z(0, 0..999) that `dcgan-rt generate -n 1000` uses:

- the digit score (dcgan_rt.train.digits): the bar is >= 90 % recognised with
  confidence >= 0.9 and every digit >= 5 % of those;
- the speckle (dcgan_rt.train.speckle): the share of background pixels brighter than
  0.05, against the real digits' figure.

The clock is the run's wall time with the scoring taken out (sample grids and
checkpoints, which a real run writes too, stay in). It reports, per recipe and seed,
when the bar was first met, and the score, speckle and wall time at the end of the
run. `old` is the digit recipe before the time-to-quality change (OLD_DIGIT_RECIPE);
by default it stops once it meets the bar (its 80 epochs are 400k images, more than
twice what the bar needs), `--old-full` trains it to the end. The new recipe also trains
a wider G and D (64 / 32), averages G longer (EMA half-life up to 60k images), ramps its
learning rates down over the last 30 % of the run, has a bias on G's output layer and
shows D the images through a mu-law compander, against speckle (docs/training.md).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dcgan_rt.latents import latent_range
from dcgan_rt.train.data import load_dataset, to_float
from dcgan_rt.train.defaults import resolve_for_data
from dcgan_rt.train.digits import load_digit_classifier
from dcgan_rt.train.loop import Callback, Trainer, TrainState
from dcgan_rt.train.options import TrainOptions
from dcgan_rt.train.speckle import speckle_score

# The digit defaults before the time-to-quality change (docs/training.md, "Time to quality"):
# 80 epochs (400k images), batch 32, Adam 1e-3 for both, D width 16, EMA half-life 20k images
# (at most 5 % of the images seen), constant learning rates.
OLD_DIGIT_RECIPE = {"epochs": 80, "batch_size": 32, "lr_g": 1e-3, "lr_d": 1e-3, "g_width": 48, "d_width": 16,
                    "ema_kimg": 20.0, "ema_rampup": 0.05, "lr_rampdown": 0.0, "g_out_bias": False, "d_mu_law": 0.0}


@dataclass
class Curve:
    recipe: str
    seed: int
    rows: list[dict] = field(default_factory=list)  # kimg, seconds, recognised, min_class, speckle
    seconds: float = 0.0
    finished: bool = False

    @property
    def first_pass(self) -> dict | None:
        return next((r for r in self.rows if r["passes"]), None)


class _Scorer(Callback):
    """Scores the release generator every `every_kimg`, with its time taken off the clock."""

    def __init__(self, curve: Curve, every_kimg: float, stop_at_bar: bool):
        self.curve, self.every, self.stop_at_bar = curve, every_kimg * 1000, stop_at_bar
        self.trainer: Trainer | None = None
        self.classifier = load_digit_classifier(32)
        self.z = torch.from_numpy(latent_range(0, 0, 1000, 100))
        self.next_nimg = self.every
        self.excluded = 0.0
        self.t0 = 0.0
        self.stop = False

    def on_start(self, state: TrainState) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def on_log(self, state: TrainState) -> None:
        # Log steps fall every 10 steps, so with batch 32 a mark of 16k images is an exact step:
        # the score there is what a run of that length would release.
        last = state.step >= state.total_steps
        if state.cur_nimg < self.next_nimg and not last:
            return
        t = time.perf_counter()
        seconds = self.elapsed()
        while self.next_nimg <= state.cur_nimg:
            self.next_nimg += self.every
        row = score_generator(self.trainer.release_generator(), self.classifier, self.z)
        raw = score_generator(self.trainer.g, self.classifier, self.z)  # without the EMA, for comparison
        row.update(kimg=state.cur_nimg / 1000, seconds=round(seconds, 1),
                   raw_recognised=raw["recognised"], raw_speckle=raw["speckle"])
        self.curve.rows.append(row)
        print(f"  {self.curve.recipe} seed {self.curve.seed}: {row['kimg']:6.1f} kimg {seconds:6.1f} s  "
              f"{row['recognised']:.1%} recognised, rarest digit {row['min_class']:.1%}, "
              f"speckle {row['speckle']:.3%} ({row['speckled_images']:.0%} of images); "
              f"raw G {row['raw_recognised']:.1%}, speckle {row['raw_speckle']:.3%}"
              f"{'  <- bar met' if row['passes'] else ''}", flush=True)
        self.excluded += time.perf_counter() - t
        if row["passes"] and self.stop_at_bar:
            state.total_steps = state.step  # the loop ends after this epoch


@torch.no_grad()
def score_generator(generator, classifier, z: torch.Tensor) -> dict:
    was_training = generator.training
    generator.eval()
    try:
        images = generator(z.to(next(generator.parameters()).device)).float().cpu()
    finally:
        generator.train(was_training)
    score, speck = classifier.score(images), speckle_score(images)
    return {"recognised": score.recognised, "min_class": score.min_class_share, "passes": score.passes(),
            "speckle": speck.speckle, "speckled_images": speck.speckled_images}


def recipe_options(name: str, seed: int) -> TrainOptions:
    if name == "new":
        return TrainOptions(seed=seed)
    if name == "old":
        return TrainOptions(seed=seed, **OLD_DIGIT_RECIPE)
    changes = {}
    for item in name.split("+"):
        key, _, value = item.partition("=")
        default = getattr(TrainOptions(), key)
        changes[key] = type(default)(value) if default is not None else (int(value) if value.isdigit() else float(value))
    return TrainOptions(seed=seed, **changes)


def train_curve(name: str, seed: int, every_kimg: float, stop_at_bar: bool) -> Curve:
    data = load_dataset("mnist-5k", 32, 1)
    opts = resolve_for_data(recipe_options(name, seed), data.num_images)
    curve = Curve(name, seed)
    scorer = _Scorer(curve, every_kimg, stop_at_bar)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(opts, data, Path(tmp), torch.device("cpu"), [scorer])
        scorer.trainer = trainer
        t = time.perf_counter()
        trainer.run()
        curve.seconds = time.perf_counter() - t - scorer.excluded
        curve.finished = trainer.state.step >= opts.total_steps(trainer.state.steps_per_epoch)
    return curve


def real_speckle() -> str:
    return str(speckle_score(to_float(load_dataset("mnist-5k", 32, 1).images)))


def compare_to_bar(seeds: list[int], recipes: list[str], every_kimg: float, old_full: bool) -> list[Curve]:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; real digits: {real_speckle()}",
          flush=True)
    curves = [train_curve(name, seed, every_kimg, stop_at_bar=name == "old" and not old_full)
              for seed in seeds for name in recipes]
    print("\nrecipe, seed: time to the bar (>= 90 % recognised, every digit >= 5 %); at the end of the run")
    for c in curves:
        first, last = c.first_pass, c.rows[-1]
        to_bar = f"{first['seconds'] / 60:.1f} min ({first['kimg']:.0f} kimg)" if first else "not met"
        end = "whole run" if c.finished else "stopped at the bar"
        print(f"  {c.recipe:>8} seed {c.seed}: bar at {to_bar}; {end}: {c.seconds / 60:.1f} min, {last['kimg']:.0f} kimg, "
              f"{last['recognised']:.1%} recognised, rarest {last['min_class']:.1%}, speckle {last['speckle']:.3%}")
    return curves
