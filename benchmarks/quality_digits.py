"""How recognisable are the digits? The default `dcgan-rt train` against the plain recipe.

Run:
  python benchmarks/quality_digits.py default            # `dcgan-rt train` with no flags, timed, then scored
  python benchmarks/quality_digits.py plain --minutes 10 # pytorch/examples' recipe for the same time, scored
                                                         # (--cpu: count this process's CPU time instead
                                                         #  of wall time, for a shared machine)
  python benchmarks/quality_digits.py score RUN_DIR      # score any run directory / generator.safetensors

The measure (dcgan_rt.train.digits): 1,000 generated digits are classified by a small
CNN trained on the real mnist-5k digits; a digit counts as recognised when the
classifier calls it one of 0-9 with probability >= 0.9 (it has an extra "not a
digit" output for malformed strokes). The target: >= 90 % recognised and every
digit >= 5 % of the recognised ones (real held-out digits: about 94 %). Beside it, the
speckle of the same images (dcgan_rt.train.speckle: the share of background pixels,
more than 2 pixels from any stroke, brighter than 0.05 of white), and the real digits'.

`default` scores the exported generator.safetensors (the EMA generator) of the run,
on the latents z(0, 0..999) that `dcgan-rt generate -n 1000` would use. `plain` trains
pytorch/examples' dcgan/main.py loop (ngf = ndf = 64, batch 128, Adam 2e-4, no EMA;
bench_train.PlainLoop) on the same digits for --minutes of wall-clock time and scores
its generator in eval mode (as an exported model runs) and in train mode (as main.py
draws its samples), reporting the better of the two.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _latents(n: int, z_dim: int) -> torch.Tensor:
    from dcgan_rt.latents import latent_range

    return torch.from_numpy(latent_range(0, 0, n, z_dim))


def score_model(model: str | Path, n: int = 1000):
    """(digit score, speckle, card) of a model's images z(0, 0..n-1)."""
    from dcgan_rt.train.digits import score_digits
    from dcgan_rt.train.release import load_generator
    from dcgan_rt.train.speckle import speckle_score

    g, card = load_generator(model)
    with torch.no_grad():
        images = g(_latents(n, card.model_config.z_dim))
    return score_digits(images), speckle_score(images), card


def real_speckle():
    from dcgan_rt.train.data import load_dataset, to_float
    from dcgan_rt.train.speckle import speckle_score

    return speckle_score(to_float(load_dataset("mnist-5k", 32, 1).images))


def run_default(out: Path, extra: list[str]) -> None:
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe), "train", "--out", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    cpu0 = os.times()
    subprocess.run(cmd, check=True)
    cpu1 = os.times()
    wall = time.perf_counter() - t
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    score, speck, card = score_model(out / "latest")
    print(f"default dcgan-rt train: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min, "
          f"{card.training_step} steps, weights {card.weights}")
    print(f"  {score}")
    print(f"  {speck} (real digits: {real_speckle()})")
    print(f"  target (>= 90 % recognised, every digit >= 5 %): {'met' if score.passes() else 'NOT met'}")


def run_plain(minutes: float, cpu: bool = False) -> None:
    from bench_train import PlainLoop

    from dcgan_rt.train.digits import score_digits
    from dcgan_rt.train.options import TrainOptions

    opts = TrainOptions(g_width=64, d_width=64, batch_size=128, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999,
                        ema_kimg=0, r1_gamma=0)  # pytorch/examples dcgan/main.py
    loop = PlainLoop(opts)
    clock = time.process_time if cpu else time.perf_counter
    t, images, steps = clock(), 0, 0
    while clock() - t < minutes * 60:
        images += loop.step()
        steps += 1
    z = _latents(1000, opts.z_dim)
    scores = {}
    for mode in ("eval", "train"):
        loop.netG.train(mode == "train")
        with torch.no_grad():
            scores[mode] = score_digits(loop.netG(z))
    best = max(scores, key=lambda m: scores[m].recognised)
    print(f"plain pytorch/examples recipe: {minutes:g} {'CPU-' if cpu else ''}min on {torch.get_num_threads()} "
          f"threads, {steps} steps, {images:,} images")
    for mode, score in scores.items():
        print(f"  {mode} mode: {score}{'  <- reported' if mode == best else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("default", help="run `dcgan-rt train` (default flags) and score it")
    d.add_argument("--out", type=Path, default=None, help="runs folder (default: a temporary one)")
    d.add_argument("train_args", nargs=argparse.REMAINDER, help="extra flags after --, e.g. -- --epochs 10")
    p = sub.add_parser("plain", help="train pytorch/examples' recipe for --minutes and score it")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--cpu", action="store_true", help="budget this process's CPU time, not wall time")
    s = sub.add_parser("score", help="score a run directory or generator.safetensors")
    s.add_argument("model")
    args = ap.parse_args()
    if args.what == "default":
        extra = [a for a in args.train_args if a != "--"]
        if args.out is None:
            with tempfile.TemporaryDirectory() as tmp:
                run_default(Path(tmp), extra)
        else:
            run_default(args.out, extra)
    elif args.what == "plain":
        run_plain(args.minutes, args.cpu)
    else:
        score, speck, card = score_model(args.model)
        print(f"{args.model} ({card.weights} weights, step {card.training_step}): {score}")
        print(f"  {speck} (real digits: {real_speckle()})")


if __name__ == "__main__":
    main()
