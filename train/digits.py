"""A small digit classifier trained on the real mnist-5k digits, to measure generated digits.

Training tier (torch). Used by the quality benchmark, the tests and `dcgan-rt evaluate`.

    from dcgan_rt.train.digits import load_digit_classifier, score_digits

    score = score_digits(images)        # images: (N, 1, H, W) float in [-1, 1], H in 16/32/64/128
    score.recognised                    # share of images classified as a digit with confidence >= 0.9
    score.class_shares                  # 10 floats: share of each digit among those confident images
    score.min_class_share, score.coverage   # the rarest digit's share; digits with >= 5 % of them
    score.passes()                      # recognised >= 0.9 and every digit >= 5 %
    clf = load_digit_classifier(32)     # DigitClassifier: .score(x), .predict(x), .features(x)
    clf.features(images)                # (N, 128) penultimate activations, for a Frechet distance

One classifier per resolution H: it sees real digits rendered at H exactly as
`--data mnist-5k` renders them (then brought to 32 x 32 inside the network), so a
generator trained at H is judged against real digits at H. Besides the ten digits it
has an eleventh output, NOT_A_DIGIT, trained on overlaid digits, shuffled quadrants
and noise blobs, so malformed strokes and noise are not counted as confident digits
(uniform noise scores 0 %; 97 % of fresh overlays / shuffles / blobs are rejected). It
trains on 4,500 of the 5,000 digits (450 per class) in about 45 CPU-seconds, every
image (digit or not) varied as a person reading digits would not notice (`_vary`:
small rotation, zoom and shift, thinner or thicker strokes, blur, noise), so that it
judges the digit rather than the stroke rendering; the other 500 are held out and score
about 94 % (`held_out_score`; top-1 accuracy 98 %), and still 92-94 % blurred, with
noise, or with strokes a pixel thicker (recipe version 1, without the variation, fell
to 88 %, 89 % and 76 % on those). Weights are cached as safetensors in `cache_dir()`
(DCGAN_RT_CACHE, else $XDG_CACHE_HOME/dcgan-rt, else ~/.cache/dcgan-rt), keyed by
resolution and recipe version (RECIPE_VERSION).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_rt.atomic import atomic_path
from dcgan_rt.config import IMG_RESOLUTIONS
from dcgan_rt.errors import UsageError
from dcgan_rt.train.data import cache_dir, mnist_5k_arrays, render_grayscale, to_float

CONFIDENCE = 0.9
MIN_CLASS_SHARE = 0.05
NUM_CLASSES = 10
NOT_A_DIGIT = 10  # the eleventh output: scrambled strokes, overlaid digits, noise
FEATURE_DIM = 128
RECIPE_VERSION = 2  # bump when the network or its training changes: invalidates cached weights
_SEED = 1234
_INPUT = 32  # the network's own resolution


@dataclass(frozen=True)
class DigitScore:
    """How recognisable a set of images is as digits, and how evenly the ten digits appear."""

    num_images: int
    recognised: float  # share of images whose top class has probability >= CONFIDENCE
    class_shares: tuple[float, ...]  # per digit 0-9: share among the confident images (sums to 1)
    mean_confidence: float  # mean top-class probability over all images

    @property
    def min_class_share(self) -> float:
        return min(self.class_shares)

    @property
    def coverage(self) -> int:
        """Digits (of 10) that make up at least MIN_CLASS_SHARE of the confident images."""
        return sum(share >= MIN_CLASS_SHARE for share in self.class_shares)

    def passes(self, recognised: float = 0.9, min_class_share: float = MIN_CLASS_SHARE) -> bool:
        return self.recognised >= recognised and self.min_class_share >= min_class_share

    def to_dict(self) -> dict:
        return {
            "num_images": self.num_images, "recognised": round(self.recognised, 4),
            "class_shares": [round(s, 4) for s in self.class_shares],
            "min_class_share": round(self.min_class_share, 4), "coverage": self.coverage,
            "mean_confidence": round(self.mean_confidence, 4),
        }

    def __str__(self) -> str:
        shares = " ".join(f"{d}:{s:.0%}" for d, s in enumerate(self.class_shares))
        return (f"{self.recognised:.1%} recognised (p >= {CONFIDENCE}) of {self.num_images}; "
                f"digits {shares}; rarest {self.min_class_share:.1%}")


class DigitNet(nn.Module):
    """(N, 1, 32, 32) -> 11 logits: the ten digits and "not a digit"."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (N, 16, 16, 16)
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (N, 64, 4, 4)
            nn.Flatten(),
            nn.Linear(64 * 16, FEATURE_DIM), nn.ReLU(inplace=True),  # (N, 128)
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, NUM_CLASSES + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class DigitClassifier:
    """A trained DigitNet for one image resolution; inputs are (N, 1, R, R) in [-1, 1]."""

    def __init__(self, net: DigitNet, img_resolution: int, held_out_score: float, device: str | torch.device = "cpu"):
        self.net = net.to(device).eval()
        self.img_resolution = img_resolution
        self.held_out_score = held_out_score  # share of the 500 held-out real digits recognised
        self.device = torch.device(device)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[-1] != images.shape[-2]:
            raise UsageError(f"digit images must be (N, 1, H, W) with H == W, got {tuple(images.shape)}")
        if images.shape[-1] != self.img_resolution:
            raise UsageError(f"this classifier scores {self.img_resolution}px digits, got {images.shape[-1]}px: "
                             f"use load_digit_classifier({images.shape[-1]})")
        x = images.detach().to(self.device, torch.float32)
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        return _to_input(x)

    @torch.no_grad()
    def _batched(self, images: torch.Tensor, fn) -> torch.Tensor:
        return torch.cat([fn(self._prepare(images[i:i + 500])) for i in range(0, images.shape[0], 500)])

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 11) probabilities: digits 0-9, then NOT_A_DIGIT."""
        return self._batched(images, lambda x: self.net(x).softmax(dim=1)).cpu()

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels (N,) in 0-10, where 10 is NOT_A_DIGIT; confidences (N,))."""
        conf, labels = self.probabilities(images).max(dim=1)
        return labels, conf

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 128) penultimate activations (float64 on the CPU), e.g. for a Frechet distance."""
        return self._batched(images, self.net.body).double().cpu()

    def score(self, images: torch.Tensor) -> DigitScore:
        labels, conf = self.predict(images)
        confident = (conf >= CONFIDENCE) & (labels != NOT_A_DIGIT)
        counts = torch.bincount(labels[confident], minlength=NUM_CLASSES).double()
        total = max(int(confident.sum()), 1)
        return DigitScore(
            num_images=int(images.shape[0]),
            recognised=float(confident.double().mean()) if images.shape[0] else 0.0,
            class_shares=tuple(float(c) / total for c in counts),
            mean_confidence=float(conf.double().mean()) if images.shape[0] else 0.0,
        )


def _to_input(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] > _INPUT:
        return F.interpolate(x, size=(_INPUT, _INPUT), mode="area")
    if x.shape[-1] < _INPUT:
        return F.interpolate(x, size=(_INPUT, _INPUT), mode="bilinear", align_corners=False)
    return x


def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """4,500 training / 500 held-out digits: every tenth digit of each class is held out."""
    pixels, labels = mnist_5k_arrays()
    labels = torch.from_numpy(labels)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(NUM_CLASSES):
        held[torch.nonzero(labels == c).flatten()[::10]] = True
    return torch.from_numpy(pixels), labels, ~held, held


def _vary(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Nuisance variation a person ignores when reading a digit, drawn per image: a small
    rotation / scale / shift, thinner or thicker strokes, a little blur, a little noise.
    Without it the classifier judges stroke rendering rather than the digit (real held-out
    digits with strokes a pixel thicker fell from 95 % to 76 % recognised). Written on the
    batch rather than with torchvision's v2 transforms: those draw one set of parameters
    per call, so a batch would share one rotation, and stroke width has no transform there."""
    n, size = x.shape[0], x.shape[-1]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=g) * (hi - lo) + lo

    angle, scale = u(-0.2, 0.2), u(0.9, 1.1)  # radians (about 11 degrees), zoom
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (4 / size)  # up to 2 pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1  # background -1

    def per_image(v: torch.Tensor) -> torch.Tensor:
        return v.view(n, 1, 1, 1)

    kind = per_image(torch.randint(0, 3, (n,), generator=g))  # thicker, thinner, unchanged strokes
    amount = per_image(u(0.0, 1.0))
    thick = F.max_pool2d(x, 3, 1, 1)
    thin = -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where(kind == 0, x + amount * (thick - x), torch.where(kind == 1, x + 0.5 * amount * (thin - x), x))
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None]).div(16).view(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    x = x + per_image(u(0.0, 1.0) * (torch.rand(n, generator=g) < 0.5)) * (blurred - x)
    sigma = per_image(u(0.0, 0.15) * (torch.rand(n, generator=g) < 0.5))
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1.0, 1.0)


def _not_digits(x: torch.Tensor, y: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n stroke images that are not one digit, so that malformed samples are not scored
    as confident digits: two digits overlaid, a digit's quadrants shuffled, or smoothed
    noise thresholded into blobs."""
    size, half = x.shape[-1], x.shape[-1] // 2
    i = torch.randint(0, len(y), (n,), generator=g)
    j = torch.randint(0, len(y), (n,), generator=g)
    j = torch.where(y[i] == y[j], torch.roll(j, 1), j)
    overlay = torch.maximum(x[i], x[j])
    quads = [x[i][..., r:r + half, c:c + half] for r in (0, half) for c in (0, half)]
    order = torch.randperm(4, generator=g)
    if torch.equal(order, torch.arange(4)):
        order = torch.tensor([3, 2, 1, 0])
    q = [quads[k] for k in order]
    shuffled = torch.cat([torch.cat(q[:2], dim=-1), torch.cat(q[2:], dim=-1)], dim=-2)
    noise = F.avg_pool2d(torch.randn(n, 1, size + 6, size + 6, generator=g), 7, stride=1)
    blobs = torch.where(noise > noise.flatten(1).quantile(0.8, dim=1)[:, None, None, None], 1.0, -1.0)
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=g)
    return torch.where(kind == 0, overlay, torch.where(kind == 1, shuffled, blobs))


def train_digit_classifier(img_resolution: int = 32, epochs: int = 12, batch: int = 112, negatives: int = 16) -> tuple[DigitNet, float]:
    """Train on 4,500 real digits at `img_resolution`; returns the net and its held-out score."""
    pixels, labels, train_mask, held_mask = _split()
    real = to_float(render_grayscale(pixels, img_resolution))  # (5000, 1, R, R), as --data mnist-5k renders them
    x_all = _to_input(real)
    x_train, y_train = x_all[train_mask], labels[train_mask]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        g = torch.Generator().manual_seed(_SEED)
        net = DigitNet()
        steps_per_epoch = len(y_train) // batch
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(y_train), generator=g)
            for k in range(steps_per_epoch):
                idx = perm[k * batch:(k + 1) * batch]
                x = _vary(torch.cat([x_train[idx], _not_digits(x_train, y_train, negatives, g)]), g)
                y = torch.cat([y_train[idx], torch.full((negatives,), NOT_A_DIGIT)])
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    net.eval()
    clf = DigitClassifier(net, img_resolution, 0.0)
    held = clf.score(real[held_mask])
    return net, held.recognised


def _cache_path(img_resolution: int) -> Path:
    return cache_dir() / f"digits-{img_resolution}px-v{RECIPE_VERSION}.safetensors"


def load_digit_classifier(img_resolution: int = 32, device: str | torch.device = "cpu",
                          retrain: bool = False) -> DigitClassifier:
    """The classifier for `img_resolution`, from the cache or trained now (~15 s) and cached."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open, save_file

    if img_resolution not in IMG_RESOLUTIONS:
        raise UsageError(f"digit classifier resolution must be one of {IMG_RESOLUTIONS}, got {img_resolution}")
    path = _cache_path(img_resolution)
    if path.is_file() and not retrain:
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            net = DigitNet()
            net.load_state_dict(load_file(str(path)))
            return DigitClassifier(net, img_resolution, float(json.loads(meta["held_out_score"])), device)
        except (SafetensorError, OSError, RuntimeError, KeyError, ValueError):
            pass  # a stale or damaged cache entry: train again and replace it
    net, held_out = train_digit_classifier(img_resolution)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp),
                      metadata={"held_out_score": json.dumps(held_out), "recipe_version": str(RECIPE_VERSION)})
    except OSError:
        pass  # a read-only cache only costs the retraining next time
    return DigitClassifier(net, img_resolution, held_out, device)


def score_digits(images: torch.Tensor, classifier: DigitClassifier | None = None) -> DigitScore:
    """Score (N, 1, H, W) images in [-1, 1] with the classifier for H (loaded or trained on first use)."""
    if classifier is None:
        classifier = load_digit_classifier(int(images.shape[-1]))
    return classifier.score(images)


def real_digits(img_resolution: int = 32, held_out: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The real mnist-5k digits at `img_resolution` in [-1, 1] (the 500 held out by default) and labels."""
    pixels, labels, train_mask, held_mask = _split()
    mask = held_mask if held_out else train_mask
    return to_float(render_grayscale(pixels[mask], img_resolution)), labels[mask]
