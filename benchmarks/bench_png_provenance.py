"""Cost of the provenance text chunks on PNG encoding, the bottleneck of `generate`.

Encodes the same batches with and without dcgan_rt.provenance's chunks (as a generate
writer thread does: PngWriter.encode), alternating, on one thread; prints images/s of
each and the ratio. Sizes: 32x32 grayscale (the digits default) and 64x64 RGB (faces).

Run: python benchmarks/bench_png_provenance.py
"""

import time

import numpy as np

from dcgan_rt.provenance import PngText, Provenance
from dcgan_rt.writers import PngWriter

BATCH = 256


def rate(writer: PngWriter, images: np.ndarray, rounds: int = 7) -> float:
    indices = np.arange(len(images))
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for k in range(0, len(images), BATCH):
            writer.encode(indices[k:k + BATCH], images[k:k + BATCH])
        best = min(best, time.perf_counter() - t)
    return len(images) / best


def main() -> None:
    text = PngText(Provenance(model_sha256="0" * 64, weights_sha256="1" * 64, seed=0))
    rng = np.random.default_rng(0)
    for shape, n in (((32, 32, 1), 8192), ((64, 64, 3), 2048)):
        # Smooth images compress like generated ones; pure noise would overstate zlib's share.
        base = rng.integers(0, 256, (n, shape[0] // 4, shape[1] // 4, shape[2]), dtype=np.uint8)
        images = np.ascontiguousarray(base.repeat(4, axis=1).repeat(4, axis=2))
        plain = PngWriter(".", shape, 100, False, (0, n))
        marked = PngWriter(".", shape, 100, False, (0, n), png_text=text)
        rates = {"plain": [], "marked": []}
        for _ in range(3):  # alternate, so drift in the machine's speed hits both
            rates["plain"].append(rate(plain, images))
            rates["marked"].append(rate(marked, images))
        p, m = max(rates["plain"]), max(rates["marked"])
        extra = len(marked.encode([0], images[:1])[0]) - len(plain.encode([0], images[:1])[0])
        print(f"{shape[0]}x{shape[1]}x{shape[2]}: without chunks {p:,.0f} images/s, with {m:,.0f} images/s "
              f"(ratio {m / p:.3f}); +{extra} bytes per PNG")


if __name__ == "__main__":
    main()
