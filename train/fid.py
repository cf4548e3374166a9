"""Fréchet distance, Kernel Inception Distance, and cached real-data statistics.

Training tier by placement; the math is numpy only, so it is exact to check against
pytorch-fid and torchmetrics on identical feature arrays (tests/test_evaluate.py,
benchmarks/bench_fid.py).

- Fréchet distance (Heusel et al., 2017) between Gaussians fitted to two feature sets:
  |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The trace of the square root is
  taken as the sum of sqrt(eigenvalues) of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2),
  which has the same spectrum as S1 S2 and, unlike scipy's sqrtm, never goes complex
  (with fewer images than dimensions, an equivalent n x n problem: fid_from_stats).
- KID (Bińkowski et al., 2018): the unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets (StyleGAN and torchmetrics:
  100 subsets of up to 1,000), reported with the subsets' standard deviation.

Real-data statistics (features, mean, covariance) are computed once per data set,
resolution, subset and Inception file, and kept as .npz in cache_dir()/fid, keyed by
a hash of the exact uint8 pixels the network saw plus the network's sha256.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan_rt.atomic import atomic_open
from dcgan_rt.errors import UsageError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
CACHE_VERSION = 1  # bump when the file layout or what the key covers changes


@dataclass(frozen=True)
class FeatureStats:
    """A feature set summarised for FID (mu, sigma) and kept whole for KID."""

    features: np.ndarray  # (N, D) float32
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64

    @property
    def num_images(self) -> int:
        return int(self.features.shape[0])

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureStats":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise UsageError(f"need at least 2 feature vectors (N, D) for a covariance, got shape {f.shape}")
        return cls(f.astype(np.float32), f.mean(axis=0), np.cov(f, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise UsageError(f"feature statistics differ in shape: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^(1/2)
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two feature sets. When one set has fewer images than dimensions, its
    covariance is X^T X / (n - 1) for the centred features X (n, D), and S_a S_b has the
    same non-zero eigenvalues as the symmetric n x n matrix X S_b X^T / (n - 1): an n x n
    eigenproblem instead of two D x D ones (seconds instead of a minute at D = 2048)."""
    small, other = (a, b) if a.num_images <= b.num_images else (b, a)
    n, d = small.num_images, small.mu.size
    if n - 1 >= d:
        return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    x = small.features.astype(np.float64) - small.mu  # (n, D)
    m = x @ other.sigma @ x.T / (n - 1)  # (n, n)
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) between two feature sets (N, D), subsets drawn without
    replacement with a fixed seed, so the same features always give the same number."""
    x_all, y_all = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], subset_size)
    if m < 2:
        raise UsageError(f"KID needs at least 2 images on each side, got {x_all.shape[0]} and {y_all.shape[0]}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[i] = within - 2.0 * k_xy.sum() / (m * m)
    return float(values.mean()), float(values.std())


def stats_key(pixels: np.ndarray, inception_sha256: str, preprocessing: str) -> str:
    """What real statistics depend on: the exact uint8 pixels, the network and its preprocessing."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}|{preprocessing}|{inception_sha256}|{pixels.dtype}|{pixels.shape}|".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()


def stats_cache_path(cache_root: Path, dataset: str, pixels: np.ndarray, key: str) -> Path:
    """cache_root/fid/<dataset>-<R>px-<C>ch-n<N>-<key>.npz: readable names, exact keys."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(dataset).name or dataset).strip("_") or "data"
    n, c, r = pixels.shape[0], pixels.shape[1], pixels.shape[-1]
    return cache_root / "fid" / f"{slug}-{r}px-{c}ch-n{n}-{key[:20]}.npz"


def load_cached_stats(path: Path, key: str) -> FeatureStats | None:
    """The cached statistics, or None when absent, stale or damaged (then they are recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            stats = FeatureStats(data["features"], data["mu"], data["sigma"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    d = stats.mu.shape[0] if stats.mu.ndim == 1 else -1
    if stats.sigma.shape != (d, d) or stats.features.ndim != 2 or stats.features.shape[1] != d:
        return None
    return stats


def save_cached_stats(path: Path, key: str, stats: FeatureStats, meta: dict[str, str]) -> None:
    """Write atomically; a read-only cache only costs recomputing next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, key=np.array(key), features=stats.features, mu=stats.mu, sigma=stats.sigma,
                     **{f"meta_{k}": np.array(str(v)) for k, v in meta.items()})
    except OSError:
        pass


def cached_real_stats(pixels: np.ndarray, dataset: str, cache_root: Path, inception_sha256: str,
                      preprocessing: str, compute: Callable[[np.ndarray], np.ndarray],
                      meta: dict[str, str] | None = None) -> tuple[FeatureStats, Path, bool]:
    """Real-data statistics from the cache, or computed with `compute(pixels) -> features`
    and cached. Returns (stats, cache file, whether it was a cache hit)."""
    key = stats_key(pixels, inception_sha256, preprocessing)
    path = stats_cache_path(cache_root, dataset, pixels, key)
    stats = load_cached_stats(path, key)
    if stats is not None:
        return stats, path, True
    stats = FeatureStats.from_features(compute(pixels))
    save_cached_stats(path, key, stats, {"dataset": dataset, "inception_sha256": inception_sha256,
                                         "preprocessing": preprocessing, **(meta or {})})
    return stats, path, False
