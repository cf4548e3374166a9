"""What N does to FID and KID: real digits against real digits, for several sample sizes.

Run: python benchmarks/bench_fid_variance.py [--pool 500] [--draws 5]
     (Inception features of the first `pool` images of the fixed mnist-5k subset at 32 px,
     the same cache entry as `dcgan-rt evaluate ... --n-real POOL`; ~0.5 s an image the first time)

For each N, draws two disjoint random sets of N real digits from the pool and prints the
mean and spread of FID and KID between them. A perfect generator scores about this;
FID's mean is the small-N bias, its std the noise between two evaluations at that N.
"""

from __future__ import annotations

import argparse

import numpy as np

from dcgan_rt.train import fid as fidlib
from dcgan_rt.train.data import cache_dir, load_dataset
from dcgan_rt.train.evaluation import real_subset
from dcgan_rt.train.inception import PREPROCESSING, load_inception


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=500, help="real images with features (split into two halves)")
    ap.add_argument("--draws", type=int, default=5)
    args = ap.parse_args()
    pixels = real_subset(load_dataset("mnist-5k", 32, 1).images, args.pool).numpy()
    inception = load_inception()
    stats, path, hit = fidlib.cached_real_stats(pixels, "mnist-5k", cache_dir(), inception.sha256, PREPROCESSING,
                                                lambda p: inception.features(p))
    features = stats.features.astype(np.float64)
    print(f"pool: {len(features)} real mnist-5k digits at 32 px ({'cached' if hit else 'computed'}: {path})")
    print(f"{'N':>5}  {'FID mean':>9}  {'FID std':>8}  {'KID x1e3 mean':>14}  {'KID x1e3 std':>13}")
    rng = np.random.default_rng(0)
    for n in (50, 100, 250, 500, 1000, 2500):
        if 2 * n > len(features):
            break
        fids, kids = [], []
        for _ in range(args.draws):
            perm = rng.permutation(len(features))
            a, b = features[perm[:n]], features[perm[n:2 * n]]
            fids.append(fidlib.fid_from_stats(fidlib.FeatureStats.from_features(a),
                                              fidlib.FeatureStats.from_features(b)))
            kids.append(fidlib.kernel_inception_distance(a, b, num_subsets=20)[0] * 1e3)
        print(f"{n:>5}  {np.mean(fids):>9.2f}  {np.std(fids):>8.2f}  {np.mean(kids):>14.3f}  {np.std(kids):>13.3f}")


if __name__ == "__main__":
    main()
