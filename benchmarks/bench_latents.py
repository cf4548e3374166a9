"""Latent generation throughput on one core against per-image default_rng (DESIGN §3).

Run: python benchmarks/bench_latents.py   (prints vectors/s and the ratio)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from dcgan_rt.latents import latent_range  # noqa: E402


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(n=200_000, z_dim=100):
    ours = n / best_of(lambda: latent_range(0, 0, n, z_dim))
    m = 5_000
    naive = m / best_of(lambda: [np.random.default_rng((0, i)).standard_normal(z_dim, dtype=np.float32) for i in range(m)])
    print(f"dcgan_rt.latents: {ours:,.0f} vectors/s (z_dim {z_dim}, one thread)")
    print(f"per-image default_rng: {naive:,.0f} vectors/s")
    print(f"ratio: {ours / naive:.1f}x; target >= 1,000,000 vectors/s: {'met' if ours >= 1e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
