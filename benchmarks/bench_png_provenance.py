"""Cost of the provenance text chunks on PNG writing, the bottleneck of `generate`.

Encodes (PngWriter.encode) and writes (PngWriter.write_batch: encode + one file per
image, as a generate writer thread does) the same images with and without
dcgan_rt.provenance's chunks, alternating, on one thread; prints images/s of each and
the ratio. Sizes: 32x32 grayscale (the digits default) and 64x64 RGB (faces).

Run: python benchmarks/bench_png_provenance.py
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from dcgan_rt.provenance import PngText, Provenance
from dcgan_rt.writers import PngWriter

BATCH = 256


def rate(fn, n: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def batches(writer: PngWriter, images: np.ndarray, write: bool):
    indices = np.arange(len(images))
    base = writer.out_dir

    def run():
        if write:  # new files each round, as generate makes them (overwriting is cheaper)
            writer.out_dir = Path(tempfile.mkdtemp(dir=base))
        for k in range(0, len(images), BATCH):
            if write:
                writer.write_batch(indices[k:k + BATCH], images[k:k + BATCH], None)
            else:
                writer.encode(indices[k:k + BATCH], images[k:k + BATCH])
    return run


def main() -> None:
    text = PngText(Provenance(model_sha256="0" * 64, seed=0))
    rng = np.random.default_rng(0)
    for shape, n in (((32, 32, 1), 4096), ((64, 64, 3), 2048)):
        # Blocky images compress like generated ones; pure noise would overstate zlib's share.
        base = rng.integers(0, 256, (n, shape[0] // 4, shape[1] // 4, shape[2]), dtype=np.uint8)
        images = np.ascontiguousarray(base.repeat(4, axis=1).repeat(4, axis=2))
        # In memory (/dev/shm where there is one): on a disk, write-back stalls swamp the difference.
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
        with tempfile.TemporaryDirectory(dir=shm) as a, tempfile.TemporaryDirectory(dir=shm) as b:
            plain = PngWriter(Path(a), shape, 100, False, (0, n))
            marked = PngWriter(Path(b), shape, 100, False, (0, n), png_text=text)
            for write in (False, True):
                rates = {"plain": [], "marked": []}
                for _ in range(3):  # alternate, so drift in the machine's speed hits both
                    rates["plain"].append(rate(batches(plain, images, write), n))
                    rates["marked"].append(rate(batches(marked, images, write), n))
                p, m = max(rates["plain"]), max(rates["marked"])
                print(f"{shape[0]}x{shape[1]}x{shape[2]} {'encode+write' if write else 'encode      '}: "
                      f"without chunks {p:,.0f} images/s, with {m:,.0f} images/s (ratio {m / p:.3f})")
        size_plain = len(plain.encode([0], images[:1])[0])
        size_marked = len(marked.encode([0], images[:1])[0])
        print(f"  PNG size: {size_plain} -> {size_marked} bytes")


if __name__ == "__main__":
    main()
