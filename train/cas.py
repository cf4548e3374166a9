"""Classification Accuracy Score (Ravuri & Vinyals, 2019): is a conditional generator's
labelled output good training data?

Training tier (torch). The protocol on digits:
- mnist-5k is split once, stratified and fixed: 400 training and 100 held-out digits of
  each class (`split_mnist_5k`); `write_class_folder` materialises the 4,000 as a
  class-subfolder folder (`OUT/<digit>/<index>.png`, 32 px as --data mnist-5k renders
  them), which `dcgan-rt train --data OUT --conditional` trains on, so the GAN never
  sees a held-out digit;
- one fixed small classifier (DigitNet's layers, one recipe, CLASSIFIER_STEPS steps) is
  trained once on 10,000 generated digits (image i: latents z(seed, i) of
  dcgan_rt.latents, label i mod 10) and once on the 4,000 real ones, and both are
  tested on the 1,000 held-out real digits. CAS is the first accuracy, and its ratio to
  the second says how much of the real data's use the synthetic set keeps;
- label fidelity: the share of generated digits that the existing digit classifier
  (dcgan_rt.train.digits) reads as the label they were asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_rt.errors import UsageError
from dcgan_rt.latents import latent_range
from dcgan_rt.train.data import mnist_5k_arrays, render_grayscale, to_float
from dcgan_rt.train.digits import NUM_CLASSES, DigitNet, load_digit_classifier

HELD_OUT_PER_CLASS = 100
SPLIT_SEED = 2019
CAS_RESOLUTION = 32
NUM_GENERATED = 10_000
CLASSIFIER_STEPS = 1200  # the same for real and generated training sets: one fixed recipe
CLASSIFIER_BATCH = 64
CLASSIFIER_SEED = 7


def split_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) into mnist-5k: HELD_OUT_PER_CLASS digits of each
    class held out, picked by a fixed permutation; both sorted."""
    _, labels = mnist_5k_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    held = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(labels == c)
        held.append(rng.permutation(members)[:HELD_OUT_PER_CLASS])
    held_idx = np.sort(np.concatenate(held))
    train_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    return train_idx, held_idx


def real_split(img_resolution: int = CAS_RESOLUTION) -> dict[str, torch.Tensor]:
    """The split as images in [-1, 1] (as --data mnist-5k renders them) and labels."""
    pixels, labels = mnist_5k_arrays()
    train_idx, held_idx = split_mnist_5k()
    images = to_float(render_grayscale(pixels, img_resolution))
    labels_t = torch.from_numpy(labels)
    return {"train_x": images[train_idx], "train_y": labels_t[train_idx],
            "test_x": images[held_idx], "test_y": labels_t[held_idx]}


def write_class_folder(out: str | Path) -> int:
    """Write the 4,000 training digits as OUT/<digit>/<mnist-5k index>.png (32 px, gray);
    returns the number written. The folder appears whole (written beside it, then renamed);
    one that already exists is refused."""
    import shutil
    import tempfile

    from PIL import Image

    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} already exists: pass a new folder for the 4,000 training digits")
    out.parent.mkdir(parents=True, exist_ok=True)
    pixels, labels = mnist_5k_arrays()
    train_idx, _ = split_mnist_5k()
    rendered = render_grayscale(pixels[train_idx], CAS_RESOLUTION)[:, 0].numpy()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for c in range(NUM_CLASSES):
            (tmp / str(c)).mkdir()
        for image, index in zip(rendered, train_idx):
            Image.fromarray(image, mode="L").save(tmp / str(int(labels[index])) / f"{int(index):05d}.png")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(train_idx)


def train_classifier(x: torch.Tensor, y: torch.Tensor, steps: int = CLASSIFIER_STEPS) -> DigitNet:
    """The fixed recipe: DigitNet, AdamW 3e-3 one-cycle, `steps` steps of CLASSIFIER_BATCH,
    no augmentation, a fixed seed (so the two training sets are the only difference)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CLASSIFIER_SEED)
        g = torch.Generator().manual_seed(CLASSIFIER_SEED)
        net = DigitNet()
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        net.train()
        order = torch.randperm(len(y), generator=g)
        pos = 0
        for _ in range(steps):
            if pos + CLASSIFIER_BATCH > len(y):
                order, pos = torch.randperm(len(y), generator=g), 0
            idx = order[pos:pos + CLASSIFIER_BATCH]
            pos += CLASSIFIER_BATCH
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: DigitNet, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = torch.cat([net(x[i:i + 500]) for i in range(0, len(y), 500)])
    return float((logits[:, :NUM_CLASSES].argmax(dim=1) == y).double().mean())


@torch.no_grad()
def generate_labelled(generator: torch.nn.Module, num_images: int = NUM_GENERATED, seed: int = 0,
                      batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """num_images digits in [-1, 1]: image i from latents z(seed, i) with label i mod 10."""
    cfg = generator.cfg
    if cfg.num_classes != NUM_CLASSES:
        raise UsageError(f"CAS on digits needs a class-conditional model of 10 classes (trained with --conditional "
                         f"on digits), got num_classes={cfg.num_classes}")
    if cfg.img_channels != 1:
        raise UsageError("CAS on digits needs a grayscale model (--img-channels 1)")
    generator = generator.eval()
    labels = torch.arange(num_images) % NUM_CLASSES
    images = []
    for start in range(0, num_images, batch):
        count = min(batch, num_images - start)
        z = torch.from_numpy(latent_range(seed, start, count, cfg.z_dim))
        out = generator(z, labels[start:start + count]).float().clamp(-1, 1)
        # quantised like every written image, then brought to the classifier's resolution
        out = out.add(1).mul(127.5).round().div(127.5).sub(1)
        if out.shape[-1] != CAS_RESOLUTION:
            out = F.interpolate(out, size=(CAS_RESOLUTION, CAS_RESOLUTION), mode="bilinear", antialias=True,
                                align_corners=False)
        images.append(out)
    return torch.cat(images), labels


@dataclass(frozen=True)
class CASResult:
    cas: float  # accuracy on the held-out real digits of the classifier trained on generated digits
    real_accuracy: float  # the same classifier trained on the 4,000 real digits
    label_fidelity: float  # generated digits the digit classifier reads as their asked label
    num_generated: int
    num_real_train: int
    num_test: int

    @property
    def ratio(self) -> float:
        return self.cas / self.real_accuracy if self.real_accuracy else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}

    def __str__(self) -> str:
        return (f"CAS {self.cas:.2%} (trained on {self.num_generated:,} generated) vs {self.real_accuracy:.2%} "
                f"(trained on {self.num_real_train:,} real): ratio {self.ratio:.3f}; label fidelity "
                f"{self.label_fidelity:.2%}; tested on {self.num_test:,} held-out real digits")


def classification_accuracy_score(generator: torch.nn.Module, num_generated: int = NUM_GENERATED, seed: int = 0,
                                  steps: int = CLASSIFIER_STEPS) -> CASResult:
    """CAS of a 10-class conditional digit generator, against the real-trained baseline."""
    fake_x, fake_y = generate_labelled(generator, num_generated, seed)
    real = real_split()
    predicted, _ = load_digit_classifier(CAS_RESOLUTION).predict(fake_x)
    fidelity = float((predicted == fake_y).double().mean())
    cas = accuracy(train_classifier(fake_x, fake_y, steps), real["test_x"], real["test_y"])
    real_acc = accuracy(train_classifier(real["train_x"], real["train_y"], steps), real["test_x"], real["test_y"])
    return CASResult(cas, real_acc, fidelity, num_generated, len(real["train_y"]), len(real["test_y"]))
