"""Time to the first training step and peak memory on a folder of 20,000 JPEGs: first run vs second run.

Makes (once) a folder of synthetic colour JPEGs at CelebA's size (178 x 218), then times
`train_run` on it at 64 px RGB, each run in a fresh process with its own cache root:

- today:  the decode that dcgan-rt used before the cache (commit 1515089's
          folders.decode_files, reproduced below): a list of decoded images, then
          np.stack into a second copy; nothing is kept between runs;
- first:  the decoded-image cache, cold: decoded straight into the memory-mapped file;
- second: the same folder again: the cache is mapped, nothing is decoded.

Each process reports the seconds spent loading the data, the seconds from its start to
the first training step (the end of step 1), and its peak RSS before loading any data
(torch imported), right after loading it, and at the first step. Page cache: the JPEGs are read from memory in every run (the
folder was just written), so the decode cost, not the disk, is what is compared.

    python benchmarks/bench_folder_cache.py                        # 20,000 images
    python benchmarks/bench_folder_cache.py --num-images 2000 --folder /tmp/jpegs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
IMG_W, IMG_H = 178, 218


def make_folder(folder: Path, num_images: int) -> None:
    """num_images colour JPEGs: smooth random colour fields plus noise (real-photo-like JPEG sizes)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        name = f"{i // 1000:02d}/{i:06d}.jpg"
        if Path(name).name in existing:
            return
        rng = np.random.default_rng(i)
        base = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).resize((IMG_W, IMG_H),
                                                                                      Image.Resampling.BICUBIC)
        pixels = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (IMG_H, IMG_W, 3))
        (folder / name).parent.mkdir(exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / name, quality=90)

    existing = {p.name for p in folder.glob("*/*.jpg")}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, range(num_images)))


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def old_decode(listing, img_resolution, img_channels, crop, say=None):
    """dcgan-rt's folder decode before the cache: every image decoded into a list, then stacked."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    from dcgan_rt.train.folders import CropTooLarge, DecodedFiles, read_image

    files = listing.files

    def decode(path):
        try:
            return read_image(path, img_resolution, img_channels, crop)
        except CropTooLarge:
            raise
        except Exception:
            return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(decode, files, chunksize=64))
    kept = [i for i, item in enumerate(decoded) if item is not None]
    images = torch.from_numpy(np.stack([decoded[i][0] for i in kept]))
    return DecodedFiles(images, kept, [str(files[i]) for i, item in enumerate(decoded) if item is None],
                        sum(decoded[i][1] for i in kept))


def child(mode: str, folder: Path, out: Path, img_resolution: int) -> None:
    import torch

    from dcgan_rt.train import data as data_module
    from dcgan_rt.train import loop
    from dcgan_rt.train.loop import Callback, train_run
    from dcgan_rt.train.options import TrainOptions

    torch.set_num_threads(os.cpu_count() or 1)
    if mode == "today":
        data_module.decode_cached = old_decode
    before = rss_bytes()
    marks: dict[str, float] = {}

    def timed_load(*args, **kwargs):
        t = time.perf_counter()
        data = data_module.load_dataset(*args, **kwargs)
        marks["load_s"], marks["data_rss"] = time.perf_counter() - t, rss_bytes()
        return data

    loop.load_dataset = timed_load

    class Timer(Callback):
        def on_start(self, state):
            marks["data_ready_s"] = time.perf_counter() - T0
            marks["loading_rss"] = rss_bytes()  # peak so far: process start, data, networks

        def on_log(self, state):
            if "first_step_s" not in marks:
                marks["first_step_s"] = time.perf_counter() - T0
                marks["peak_rss"] = rss_bytes()

    opts = TrainOptions(data=str(folder), out=str(out), steps=1, img_resolution=img_resolution, img_channels=3,
                        batch_size=64, crop=0)
    state = train_run(opts, callbacks=[Timer()])
    print(json.dumps({**marks, "rss_before_data": before, "steps": state.step}))


def run_child(mode: str, folder: Path, cache: Path, out: Path, img_resolution: int) -> dict:
    env = {**os.environ, "DCGAN_RT_CACHE": str(cache), "DCGAN_RT_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--out", str(out),
           "--img-resolution", str(img_resolution)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=None, help="where the JPEGs are made (kept; reused when "
                        "already made) [default: a temporary folder, removed]")
    parser.add_argument("--img-resolution", type=int, default=64)
    parser.add_argument("--make-only", action="store_true", help="only make the folder (untimed)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.folder, args.out, args.img_resolution)

    with tempfile.TemporaryDirectory(prefix="dcgan-rt-folder-cache-") as tmp:
        tmp = Path(tmp)
        folder = args.folder or tmp / "jpegs"
        t = time.perf_counter()
        make_folder(folder, args.num_images)
        print(f"folder: {args.num_images:,} JPEGs of {IMG_W}x{IMG_H} in {folder} "
              f"({sum(p.stat().st_size for p in folder.glob('*/*.jpg')) / 2**20:.0f} MiB; "
              f"made/checked in {time.perf_counter() - t:.0f} s)")
        if args.make_only:
            return
        set_bytes = args.num_images * 3 * args.img_resolution ** 2
        results = {}
        for mode in ("today", "first", "second"):
            cache = tmp / ("cache-today" if mode == "today" else "cache")
            results[mode] = run_child(mode, folder, cache, tmp / f"runs-{mode}", args.img_resolution)
        cache_bytes = sum(f.stat().st_size for f in (tmp / "cache" / "decoded").glob("*/images.u8"))

    mib = 2**20
    print(f"\ndecoded set: {args.num_images:,} x 3 x {args.img_resolution} x {args.img_resolution} uint8 = "
          f"{set_bytes / mib:.0f} MiB; cache file {cache_bytes / mib:.0f} MiB")
    print(f"{'run':<8} {'load s':>7} {'first step s':>13} {'peak RSS MiB: before data':>26} {'data loaded':>12} "
          f"{'first step':>11} {'load growth / set':>18}")
    for mode, r in results.items():
        grown = r["data_rss"] - r["rss_before_data"]
        print(f"{mode:<8} {r['load_s']:>7.1f} {r['first_step_s']:>13.1f} {r['rss_before_data'] / mib:>26.0f} "
              f"{r['data_rss'] / mib:>12.0f} {r['peak_rss'] / mib:>11.0f} {grown / set_bytes:>17.2f}x")
    t, f, s = (results[m]["first_step_s"] for m in ("today", "first", "second"))
    print(f"\ntime to first step: second run / first run = {s / f:.3f} ({f / s:.1f}x sooner); "
          f"first run / today = {f / t:.2f}")
    grown = {m: results[m]["data_rss"] - results[m]["rss_before_data"] for m in results}
    print(f"peak RSS growth while loading the data: first / today = {grown['first'] / grown['today']:.2f}, "
          f"second / today = {grown['second'] / grown['today']:.2f}")


if __name__ == "__main__":
    main()
