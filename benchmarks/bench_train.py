"""Training throughput: dcgan-rt's training step against a plain pytorch/examples-style loop.

Run: python benchmarks/bench_train.py [--steps 40] [--repeats 3] [--threads N]
     python benchmarks/bench_train.py --to-bar [--seeds 0,1] [--eval-kimg 16]

`--to-bar` measures time to quality instead (time_to_bar.py): today's digit defaults and
the previous ones (OLD_DIGIT_RECIPE) trained one after the other in this process, each
scored every --eval-kimg thousand images, and reports when each first met the bar
(>= 90 % recognised, every digit >= 5 %), its score and speckle at the end, and the
whole run's wall time. The throughput comparison below is the default mode.

Both sides train the same networks (dcgan_rt.train.networks at the same widths, batch
and resolution) on the same mnist-5k digits on the CPU, and do the same arithmetic
per step: one D update on a real and a fake batch, one non-saturating G update, BCE
on D's logits, Adam (main.py's 2e-4, 0.5 for the baseline, dcgan-rt's defaults for it: the same
cost). The baseline is pytorch/examples' dcgan/main.py loop
as written there: a torchvision-style Dataset of PIL images with Resize/ToTensor/
Normalize transforms behind a DataLoader (2 workers, shuffle), D's weight gradients
computed in the G step, NCHW tensors, no EMA. dcgan-rt's side is the real
`Trainer.train_step` fed by `make_batches` (uint8 digits in memory, one gather per
batch, channels_last, no D weight gradients in the G step) and it also updates its
generator EMA.

Timings alternate between the two, `--repeats` times, and report the median
images/s of each (wall clock: the machine may be shared, so compare the ratio, which
is measured side by side). It prints the ratio for dcgan-rt's default sizes and for
pytorch/examples' sizes (ngf = ndf = 64, batch 128), both with the R1 penalty and the
InfoGAN code off (the baseline's arithmetic), and for dcgan-rt's full defaults, whose R1
penalty adds a double-backward pass through D every fourth step (the code's extra D
outputs and cross-entropy cost next to nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_rt.train.batches import make_batches
from dcgan_rt.train.data import load_dataset, mnist_5k_arrays
from dcgan_rt.train.loop import Trainer
from dcgan_rt.train.networks import build_discriminator, build_generator
from dcgan_rt.train.options import TrainOptions


class _Digits(torch.utils.data.Dataset):
    """Like torchvision.datasets.MNIST: PIL images through a transform, one at a time."""

    def __init__(self, img_resolution: int):
        from PIL import Image
        from torchvision import transforms

        pixels, labels = mnist_5k_arrays()
        self.images = [Image.fromarray(p, mode="L") for p in pixels]
        self.labels = labels
        self.transform = transforms.Compose([
            transforms.Resize(img_resolution), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,)),
        ])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


class PlainLoop:
    """pytorch/examples dcgan/main.py's training loop (BCE on logits instead of Sigmoid + BCELoss)."""

    def __init__(self, opts: TrainOptions, workers: int = 2):
        cfg = dataclasses.replace(opts.model_config, code_dim=0)  # main.py's plain DCGAN
        torch.manual_seed(0)
        self.netG, self.netD = build_generator(cfg), build_discriminator(cfg)
        self.criterion = nn.BCEWithLogitsLoss()
        # main.py's optimiser whatever dcgan-rt's defaults are (its --lr 0.0002, --beta1 0.5)
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = torch.utils.data.DataLoader(_Digits(cfg.img_resolution), batch_size=opts.batch_size,
                                                  shuffle=True, num_workers=workers, drop_last=True)
        self.z_dim = cfg.z_dim
        self._batches = self._forever()

    def _forever(self):
        while True:  # a new epoch: main.py iterates the DataLoader afresh (workers restart)
            yield from self.loader

    def step(self) -> int:
        real, _ = next(self._batches)
        b = real.size(0)
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        label = torch.full((b,), 1.0)
        output = self.netD(real).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        noise = torch.randn(b, self.z_dim, 1, 1)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        self.optimizerD.step()
        # (2) Update G: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        return b


class DcganRtLoop:
    """dcgan-rt's own training step and batches."""

    def __init__(self, opts: TrainOptions):
        self.data = load_dataset("mnist-5k", opts.img_resolution, opts.img_channels)
        self.tmp = tempfile.TemporaryDirectory()
        self.trainer = Trainer(opts, self.data, Path(self.tmp.name), torch.device("cpu"))
        self.opts = opts
        self._batches = (b for epoch in itertools.count() for b in make_batches(self.data, torch.device("cpu"), opts, epoch, 0))

    def step(self) -> int:
        real = next(self._batches)
        self.trainer.train_step(real)
        return real.shape[0]


def images_per_s(loop, steps: int) -> float:
    t = time.perf_counter()
    n = sum(loop.step() for _ in range(steps))
    return n / (time.perf_counter() - t)


def compare(label: str, opts: TrainOptions, steps: int, repeats: int, workers: int) -> float:
    plain, ours = PlainLoop(opts, workers), DcganRtLoop(opts)
    for loop in (plain, ours):  # warm-up: allocator, oneDNN primitive caches, worker start
        images_per_s(loop, 5)
    p_runs, o_runs = [], []
    for r in range(repeats):
        order = [(plain, p_runs), (ours, o_runs)] if r % 2 == 0 else [(ours, o_runs), (plain, p_runs)]
        for loop, runs in order:
            runs.append(images_per_s(loop, steps))
    p, o = statistics.median(p_runs), statistics.median(o_runs)
    print(f"{label}: g_width {opts.g_width}, d_width {opts.d_width}, batch {opts.batch_size}, "
          f"{opts.img_resolution}px")
    print(f"  plain pytorch/examples loop: {p:8.1f} images/s  (runs: {', '.join(f'{v:.0f}' for v in p_runs)})")
    print(f"  dcgan-rt train step:         {o:8.1f} images/s  (runs: {', '.join(f'{v:.0f}' for v in o_runs)})")
    print(f"  ratio: {o / p:.2f}x")
    return o / p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline (main.py: 2)")
    ap.add_argument("--to-bar", action="store_true", help="time to the digit quality bar: old vs new defaults")
    ap.add_argument("--seeds", default="0", help="--to-bar: training seeds, comma-separated")
    ap.add_argument("--eval-kimg", type=float, default=16.0, help="--to-bar: thousands of images between scores")
    ap.add_argument("--recipes", default="old,new",
                    help="--to-bar: which to train, comma-separated: old, new, or KEY=VALUE+KEY=VALUE overrides of new")
    ap.add_argument("--old-full", action="store_true",
                    help="--to-bar: train the old recipe its whole length (default: stop once it meets the bar)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.to_bar:
        from time_to_bar import compare_to_bar

        compare_to_bar([int(s) for s in args.seeds.split(",")], args.recipes.split(","), args.eval_kimg,
                       args.old_full)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    default = TrainOptions()
    same = default.replace(r1_gamma=0.0, code_dim=0)  # the baseline's arithmetic: no R1 penalty, no code
    examples = same.replace(g_width=64, d_width=64, batch_size=128)
    ratios = [
        compare("dcgan-rt default sizes, R1 off (the same arithmetic)", same, args.steps, args.repeats, args.workers),
        compare("pytorch/examples sizes, R1 off", examples, max(args.steps // 2, 5), args.repeats, args.workers),
        compare("dcgan-rt defaults (R1 every 4th step, InfoGAN code: more work per step)", default, args.steps, args.repeats,
                args.workers),
    ]
    print(f"speed-up, same arithmetic: {ratios[0]:.2f}x at the default sizes (target >= 1.3x), {ratios[1]:.2f}x at "
          f"examples sizes; with the default R1 penalty and code: {ratios[2]:.2f}x")


if __name__ == "__main__":
    main()
