"""Latent vectors as a pure function of (seed, index): z(S, i), the same on every backend.

Core tier (numpy only). Image i of a run with seed S always uses the same latent,
whatever the batch size, backend, shard, resume point or number of images asked
for. docs/latents.md specifies the formula with test vectors so another language
can reproduce it bit for bit: a counter-based 32-bit hash gives one uniform per
component, and Wichura's AS241 (PPND7) inverse normal CDF turns it into a standard
normal. The central 85% uses only float32 +, *, / (exactly reproducible, e.g. with
Math.fround in JavaScript); the tails use float64 log/sqrt, rounded to float32.

No transcendental functions on the hot path keeps it vectorised and fast: over
1M vectors of z_dim 100 a second on one core (benchmarks/bench_latents.py).
"""

from __future__ import annotations

import numpy as np

from dcgan_rt.errors import UsageError

MAX_SEED = 2**32 - 1
MAX_INDEX = 2**32 - 1

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_GOLDEN = np.uint32(0x9E3779B9)
_SEED_SALT = np.uint32(0x85EBCA6B)  # keeps h(0) = 0 from giving seed 0 a fixed point

# AS241 PPND7 coefficients, highest-order last: central |q| <= 0.425 (float32) ...
_A = [3.3871327179e00, 5.0434271938e01, 1.5929113202e02, 5.9109374720e01]
_B = [1.0, 1.7895169469e01, 7.8757757664e01, 6.7187563600e01]
# ... and tails: r = sqrt(-ln(min(u, 1 - u))) <= 5 (C/D) or > 5 (E/F), float64.
_C = [1.4234372777e00, 2.7568153900e00, 1.3067284816e00, 1.7023821103e-01]
_D = [1.0, 7.3700164250e-01, 1.2021132975e-01]
_E = [6.6579051150e00, 3.0812263860e00, 4.2868294337e-01, 1.7337203997e-02]
_F = [1.0, 2.4197894225e-01, 1.2258202635e-02]
_A32 = [np.float32(c) for c in _A]
_B32 = [np.float32(c) for c in _B]

# Images per chunk are chosen so one chunk's arrays stay in cache.
_CHUNK_VALUES = 1 << 17


def _hash32(x: np.ndarray) -> np.ndarray:
    """lowbias32 (C. Wellons, 2018): a bijection on uint32 with very low bias."""
    x = x ^ (x >> np.uint32(16))
    x *= _M1
    x ^= x >> np.uint32(15)
    x *= _M2
    x ^= x >> np.uint32(16)
    return x


def _horner(coefs: list, x: np.ndarray) -> np.ndarray:
    """coefs[0] + coefs[1]*x + ..., evaluated as ((c3*x + c2)*x + c1)*x + c0, no fused ops."""
    acc = np.full_like(x, coefs[-1])
    for c in reversed(coefs[:-1]):
        acc *= x
        acc += c
    return acc


def _normals(q: np.ndarray) -> np.ndarray:
    """Inverse normal CDF of u = q + 0.5 for float32 q in (-0.5, 0.5), any shape."""
    r = np.float32(0.180625) - q * q
    z = q * _horner(_A32, r)
    z /= _horner(_B32, r)
    flat_q, flat_z = q.reshape(-1), z.reshape(-1)
    tail = np.flatnonzero(np.abs(flat_q) > np.float32(0.425))
    if tail.size:
        qt = flat_q.take(tail).astype(np.float64)
        rt = np.sqrt(-np.log(0.5 - np.abs(qt)))
        near = rt <= 5.0
        zt = np.where(
            near,
            _horner(_C, rt - 1.6) / _horner(_D, rt - 1.6),
            _horner(_E, rt - 5.0) / _horner(_F, rt - 5.0),
        )
        flat_z.put(tail, np.copysign(zt, qt))
    return z


def _check(seed: int, z_dim: int) -> None:
    if isinstance(seed, bool) or not (0 <= int(seed) <= MAX_SEED):
        raise UsageError(f"seed must be an integer in 0..{MAX_SEED}, got {seed}")
    if z_dim < 1:
        raise UsageError(f"z_dim must be positive, got {z_dim}")


def latents(seed: int, indices, z_dim: int) -> np.ndarray:
    """z(seed, i) for each i in `indices`: float32 array of shape (len(indices), z_dim)."""
    _check(seed, z_dim)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() > MAX_INDEX):
        raise UsageError(f"image indices must be in 0..{MAX_INDEX}")
    out = np.empty((idx.size, z_dim), dtype=np.float32)
    with np.errstate(over="ignore"):
        k = _hash32(np.array([seed], dtype=np.uint32) ^ _SEED_SALT)[0]
        c = _hash32(np.arange(z_dim, dtype=np.uint32) * _GOLDEN + k)  # (z_dim,) per-component keys
        step = max(1, _CHUNK_VALUES // z_dim)
        for s in range(0, idx.size, step):
            chunk = idx[s : s + step].astype(np.uint32)
            a = _hash32(chunk ^ k)  # (n,) per-image keys
            b = _hash32(a[:, None] + c[None, :])  # (n, z_dim) random words
            m = ((b >> np.uint32(8)) | np.uint32(1)).astype(np.int32)  # odd, 24 bits
            q = (m - np.int32(1 << 23)).astype(np.float32) * np.float32(2.0**-24)  # exact
            out[s : s + step] = _normals(q)
    return out


def latent_range(seed: int, start: int, count: int, z_dim: int) -> np.ndarray:
    """Latents for the contiguous index range [start, start + count)."""
    return latents(seed, np.arange(start, start + count, dtype=np.int64), z_dim)
