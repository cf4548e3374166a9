"""Scoring a generator against real data: FID, KID, memorisation and, for digit models, digit scores.

Training tier (torch). `evaluate_model` is what `dcgan-rt evaluate` runs: it builds a
backend for MODEL (so .onnx and .engine files are scored exactly as they generate),
makes images z(seed, 0..n-1) in batches and streams them through the networks.
`Evaluator` holds the real-data side (cached statistics, loaded networks) so the
training loop can score its generator every N steps without paying for it twice.

Every image is scored as uint8 pixels, the way `dcgan-rt generate` writes it, and the
real images are the uint8 pixels `dcgan-rt train --data` trains on at the model's
resolution: FID here is FID at that resolution (MNIST at 32 px upsampled to 299).

The memorisation figure (memorization.py: how close generated images come to their
nearest training image, relative to how close the training images are to each other)
is pixel arithmetic, seconds at most, and part of `auto` for every data set.

Variance: FID is biased upward for small N and both FID and KID vary between draws;
compare numbers measured with the same N (docs/evaluate.md gives magnitudes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.latents import latent_range
from dcgan_rt.train import fid as fidlib
from dcgan_rt.train import memorization as memo
from dcgan_rt.train.data import GrayscaleDataError, cache_dir, load_dataset, to_float
from dcgan_rt.train.faces import default_crop
from dcgan_rt.train.options import BUILTIN_SOURCES

METRICS = ("fid", "kid", "digits", "memorization")
DIGIT_DATASETS = ("mnist-5k", "mnist")
MAX_REAL = 50_000  # the field's FID50k: more real images than that are subsampled
DEFAULT_NUM_IMAGES = 10_000
GEN_BATCH = 256

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class EvalResult:
    """What one evaluation measured; None where a metric was not asked for."""

    num_generated: int
    num_real: int
    fid: float | None = None
    kid: float | None = None  # mean over subsets (x 1e3 is how papers often print it)
    kid_std: float | None = None
    digits: object | None = None  # dcgan_rt.train.digits.DigitScore
    digit_fd: float | None = None  # Fréchet distance in the digit classifier's 128-d features
    memorization: memo.Memorization | None = None
    info: dict = field(default_factory=dict)  # model, data, seed, inception, cache file, timings

    def to_dict(self) -> dict:
        out: dict = {"num_generated": self.num_generated, "num_real": self.num_real}
        if self.fid is not None:
            out["fid"] = round(self.fid, 4)
        if self.kid is not None:
            out["kid"] = round(self.kid, 6)
            out["kid_std"] = round(self.kid_std or 0.0, 6)
        if self.digits is not None:
            out["digits"] = self.digits.to_dict()
        if self.digit_fd is not None:
            out["digit_fd"] = round(self.digit_fd, 4)
        if self.memorization is not None:
            out.update(self.memorization.to_dict())
        out.update(self.info)
        return out

    def flat(self, prefix: str = "eval/") -> dict[str, float]:
        """Scalars only, for metrics.jsonl."""
        out = {}
        for name in ("fid", "kid", "digit_fd"):
            value = getattr(self, name)
            if value is not None:
                out[prefix + name] = round(float(value), 6)
        if self.digits is not None:
            out[prefix + "digits_recognised"] = round(self.digits.recognised, 4)
            out[prefix + "digits_coverage"] = self.digits.coverage
        if self.memorization is not None:
            out[prefix + "memorization"] = round(self.memorization.ratio, 4)
        return out


def parse_metrics(text: str | Iterable[str] | None, dataset: str | None) -> tuple[str, ...]:
    """'fid,kid,digits,memorization' -> a tuple in canonical order; None/'auto': fid, kid and
    memorization, plus digits when the data (or the model's training data) is MNIST."""
    if text is None or text == "auto":
        return ("fid", "kid") + (("digits",) if dataset in DIGIT_DATASETS else ()) + ("memorization",)
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in METRICS]
    if unknown or not items:
        raise UsageError(f"unknown --metrics {','.join(unknown) or '(empty)'}: use a comma list of "
                         f"{', '.join(METRICS)}, or auto")
    return tuple(m for m in METRICS if m in items)


def real_subset(pixels: torch.Tensor, num_real: int | None) -> torch.Tensor:
    """The first num_real images of a fixed permutation (all of them, in order, when they fit)."""
    total = int(pixels.shape[0])
    n = min(total, num_real or MAX_REAL)
    if n >= total:
        return pixels
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n]
    return pixels[perm.sort().values]


class Evaluator:
    """The real side of an evaluation, prepared once: pixels, statistics, networks."""

    def __init__(self, real: torch.Tensor, dataset: str, metrics: Iterable[str] = ("fid", "kid"),
                 inception: str | Path | None = None, device: str = "cpu", batch_size: int = 32,
                 progress: Progress | None = None, log: Callable[[str], None] | None = None):
        self.metrics = tuple(metrics)
        self.real = real  # (N, C, R, R) uint8
        self.dataset = dataset
        self.batch_size = batch_size
        self.progress = progress
        self.inception = None
        self.real_stats: fidlib.FeatureStats | None = None
        self.cache_file: Path | None = None
        self.digit_classifier = None
        self.real_digit_mu = self.real_digit_sigma = None
        self.memorization: memo.MemorizationReference | None = None
        if real.shape[0] < 2:
            raise UsageError(f"--data {dataset} has {real.shape[0]} image(s); FID and KID need at least 2")
        if "fid" in self.metrics or "kid" in self.metrics:
            from dcgan_rt.train.inception import PREPROCESSING, load_inception

            self.inception = load_inception(inception, device)

            def compute(pixels: np.ndarray) -> np.ndarray:
                if log:
                    log(f"computing Inception statistics of {pixels.shape[0]} real images once "
                        f"(cached in {cache_dir() / 'fid'})")
                return self.inception.features(pixels, batch_size, self._phase("real images"))

            self.real_stats, self.cache_file, hit = fidlib.cached_real_stats(
                real.numpy(), dataset, cache_dir(), self.inception.sha256, PREPROCESSING, compute,
                meta={"img_resolution": str(real.shape[-1])})
            if log and hit:
                log(f"real statistics from cache {self.cache_file}")
        if "digits" in self.metrics:
            from dcgan_rt.train.digits import load_digit_classifier

            self.digit_classifier = load_digit_classifier(int(real.shape[-1]), device)
            feats = self.digit_classifier.features(to_float(real)).numpy()
            self.real_digit_mu, self.real_digit_sigma = feats.mean(axis=0), np.cov(feats, rowvar=False)
        if "memorization" in self.metrics:
            self.memorization = memo.MemorizationReference(real_subset(real, memo.reference_size(real.shape[1:])))

    def _phase(self, name: str):
        if not self.progress:
            return None
        return lambda done, total: self.progress(name, done, total)

    def score(self, batches: Iterable[torch.Tensor], num_images: int) -> EvalResult:
        """Score generated uint8 (N, C, R, R) batches totalling num_images."""
        inception_feats, digit_images, kept, done = [], [], [], 0
        report = self._phase("generated images")
        for batch in batches:
            if batch.dtype != torch.uint8 or tuple(batch.shape[1:]) != tuple(self.real.shape[1:]):
                raise UsageError(f"generated images are {batch.dtype} {tuple(batch.shape[1:])}, but the real data is "
                                 f"uint8 {tuple(self.real.shape[1:])}: evaluate against data at the model's "
                                 "resolution and channels")
            if self.inception is not None:
                for start in range(0, batch.shape[0], self.batch_size):
                    inception_feats.append(self.inception(batch[start:start + self.batch_size]).double().numpy())
                    if report:
                        report(min(done + start + self.batch_size, num_images), num_images)
            if self.digit_classifier is not None:
                digit_images.append(batch)
            if self.memorization is not None and done < memo.MAX_GENERATED:
                kept.append(batch[:memo.MAX_GENERATED - done])
            done += int(batch.shape[0])
            if report and self.inception is None:
                report(done, num_images)
        result = EvalResult(num_generated=done, num_real=int(self.real.shape[0]))
        if self.inception is not None:
            fake = fidlib.FeatureStats.from_features(np.concatenate(inception_feats))
            if "fid" in self.metrics:
                result.fid = fidlib.fid_from_stats(self.real_stats, fake)
            if "kid" in self.metrics:
                result.kid, result.kid_std = fidlib.kernel_inception_distance(self.real_stats.features,
                                                                              fake.features)
        if self.digit_classifier is not None:
            images = to_float(torch.cat(digit_images))
            result.digits = self.digit_classifier.score(images)
            feats = self.digit_classifier.features(images).numpy()
            result.digit_fd = fidlib.frechet_distance(self.real_digit_mu, self.real_digit_sigma,
                                                      feats.mean(axis=0), np.cov(feats, rowvar=False))
        if self.memorization is not None:
            result.memorization = self.memorization.score(torch.cat(kept))
        return result

    def describe(self) -> dict:
        info: dict = {"data": self.dataset, "img_resolution": int(self.real.shape[-1]),
                      "metrics": list(self.metrics)}
        if self.inception is not None:
            info["inception"] = str(self.inception.path)
            info["inception_sha256"] = self.inception.sha256
            info["real_stats_cache"] = str(self.cache_file)
        if self.digit_classifier is not None:
            info["digit_classifier_held_out"] = round(self.digit_classifier.held_out_score, 4)
        return info


def generator_batches(generate: Callable[[np.ndarray], np.ndarray], z_dim: int, num_images: int, seed: int = 0,
                      batch_size: int = GEN_BATCH) -> Iterator[torch.Tensor]:
    """uint8 NCHW batches of images z(seed, 0..num_images-1) from `generate(z) -> uint8 NHWC`."""
    for start in range(0, num_images, batch_size):
        count = min(batch_size, num_images - start)
        images = generate(latent_range(seed, start, count, z_dim))  # (n, H, W, C) uint8
        yield torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def check_num_images(num_images: int) -> None:
    if isinstance(num_images, bool) or int(num_images) < 2:
        raise UsageError(f"-n must be at least 2 (FID needs a covariance; use thousands for stable numbers), "
                         f"got {num_images}")


def default_data(card, model: str | Path | None = None) -> str:
    """The data a model was trained on, when that can be read here: a built-in source by
    name, else the folder its run directory's train_config.json records (a card names a
    folder, never its path), else the absolute path a version-1 card recorded."""
    if card.dataset in BUILTIN_SOURCES:
        return card.dataset
    recorded = _recorded_folder(Path(model)) if model is not None else None
    if recorded is not None:
        return recorded
    if Path(card.dataset).is_absolute() and Path(card.dataset).is_dir():
        return card.dataset
    raise UsageError(f"the model was trained on {card.dataset!r}, which is not a data source here: pass "
                     f"--data {'|'.join(BUILTIN_SOURCES)}|DIR")


def _recorded_folder(model: Path) -> str | None:
    """The folder a run directory recorded, for MODEL inside it (or in its export/)."""
    from dcgan_rt.train.run_config import read_train_config

    folder = model if model.is_dir() else model.parent
    for run in (folder, folder.parent):
        try:
            path = read_train_config(run)["dataset"]["path"]
        except (DcganRtError, KeyError, TypeError):
            continue
        return path if isinstance(path, str) and Path(path).is_dir() else None
    return None


def training_crop(card) -> int | None:
    """The crop the model's training data was cut with, where its card records one
    (extra["crop"]); None: the source's default."""
    crop = card.extra.get("crop")
    return crop if isinstance(crop, int) and not isinstance(crop, bool) and crop >= 0 else None


def evaluate_model(model: str | Path, data: str | None = None, num_images: int = DEFAULT_NUM_IMAGES, *,
                   num_real: int | None = None, seed: int = 0, metrics: str | Iterable[str] | None = None,
                   inception: str | Path | None = None, backend: str = "auto", data_root: str | Path | None = None,
                   device: str = "auto", batch_size: int = 32, progress: Progress | None = None,
                   log: Callable[[str], None] | None = None, crop: int | None = None) -> EvalResult:
    """FID / KID, memorisation (and digit scores for MNIST models) of MODEL's images against
    `data` (default: what the model was trained on), read as `train` reads it (`crop` as for
    load_dataset; by default the crop the model's card records for its own data)."""
    from dcgan_rt.backends import select_backend

    check_num_images(num_images)
    parse_metrics(metrics, None)  # bad names fail before anything is loaded
    if num_real is not None and num_real < 2:
        raise UsageError(f"--n-real must be at least 2, got {num_real}")
    t0 = time.perf_counter()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but this PyTorch sees no CUDA GPU: use --device cpu (or auto)")
    with select_backend(model, backend) as gen:
        card = gen.card
        cfg = card.model_config
        own_data = data is None
        data = data or default_data(card, model)
        chosen = parse_metrics(metrics, data if data in DIGIT_DATASETS else card.dataset)
        if crop is None and (own_data or data == card.dataset):
            crop = training_crop(card)
        try:
            train_data = load_dataset(data, cfg.img_resolution, cfg.img_channels, data_root, warn=log, crop=crop)
        except GrayscaleDataError:
            raise UsageError(f"the model makes RGB images but --data {data} is grayscale: evaluate it against "
                             "colour images") from None
        real = real_subset(train_data.images, num_real)
        evaluator = Evaluator(real, train_data.name, chosen, inception, device, batch_size, progress, log)
        t_real = time.perf_counter()
        batch = min(GEN_BATCH, gen.max_batch or GEN_BATCH)  # an engine's profile may cap the batch
        result = evaluator.score(generator_batches(gen.images, cfg.z_dim, num_images, seed, batch), num_images)
        t_end = time.perf_counter()
        result.info = {"model": str(model), "backend": gen.describe(), "seed": seed, **evaluator.describe(),
                       "crop": crop if crop is not None else default_crop(data),
                       "seconds": round(t_end - t0, 1), "seconds_generated": round(t_end - t_real, 1)}
    return result
