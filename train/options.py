"""Every training hyperparameter in one frozen dataclass, recorded in train_config.json.

Training tier (no torch at import). The defaults are the recipe `dcgan-rt train`
runs with no flags; docs/training.md explains each choice and the measurements
behind it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan_rt.config import IMG_CHANNELS, IMG_RESOLUTIONS, ModelConfig, valid_code_dim
from dcgan_rt.errors import ArtifactError, UsageError

DEVICES = ("auto", "cpu", "cuda")
BUILTIN_SOURCES = ("mnist-5k", "mnist", "celeba", "orl")
# (img_resolution, img_channels) a built-in source trains at when the user does not say.
SOURCE_DEFAULTS = {"mnist-5k": (32, 1), "mnist": (32, 1), "orl": (64, 1), "celeba": (64, 3)}


def source_defaults(source: str) -> tuple[int, int] | None:
    """(img_resolution, img_channels) for a built-in source; None for a folder (the
    training options' own defaults apply)."""
    return SOURCE_DEFAULTS.get(source)
LOSSES = ("bce",)
COND_DISCRIMINATORS = ("projection", "acgan")  # how D reads the label (dcgan_rt.train.networks)
AUGMENT_POLICIES = ("auto", "off", "diffaug", "ada")  # auto + dcgan_rt.train.augment.POLICIES, without torch
DEFAULT_EPOCHS = 80
DEFAULT_CODE_DIM = 40

# Options a resumed run may change; everything else must match the run being continued.
# (sync_bn, like device, is about where the run trains: a run may resume on other hardware.
# The learning rates may change so that a run that diverged can go on from its last good
# checkpoint with smaller steps.)
# What changes with img_resolution, measured (docs/training.md): below 64 px the digits'
# recipe; at 64 px the digits' narrow D cannot tell faces apart (ORL, 160k images: FID 127
# with widths 64/32 vs 202 with 48/16) and a lighter R1 lets them sharpen (79 with
# gamma 0.3 vs 111 with 1, and 287 with 3; on 2 CPU cores, 200k images: 57 with 0.1 vs 72
# with 0.3).
RESOLUTION_DEFAULTS = {
    "small": {"r1_gamma": 1.0, "ema_kimg": 60.0, "ema_rampup": 0.3, "lr_rampdown": 0.3,
              "g_out_bias": True, "d_mu_law": 16.0},
    "large": {"r1_gamma": 0.1, "ema_kimg": 20.0, "ema_rampup": 0.05, "lr_rampdown": 0.0,
              "g_out_bias": False, "d_mu_law": 0.0},
}


def resolution_defaults(img_resolution: int) -> dict:
    return RESOLUTION_DEFAULTS["large" if img_resolution >= 64 else "small"]


RESUMABLE_OVERRIDES = ("epochs", "steps", "kimg", "device", "sync_bn", "lr_g", "lr_d", "snapshot_kimg")


@dataclass(frozen=True)
class TrainOptions:
    data: str = "mnist-5k"
    data_root: str | None = None
    crop: int | None = None  # centred square cut before resizing, in pixels; None: the source's (celeba 108), 0: largest
    out: str = "runs"
    epochs: int | None = None  # total epochs
    steps: int | None = None  # total optimizer steps; stops mid-epoch if needed
    kimg: float | None = None  # total thousands of images; none of the three: chosen by the data (train/defaults.py)
    img_resolution: int = 32
    img_channels: int = 1
    batch_size: int = 32
    z_dim: int = 100
    g_width: int = 64  # generator channels at full resolution (ngf): the best measured below and at 64 px (docs/training.md)
    d_width: int = 32
    g_out_bias: bool | None = None  # None: by resolution; a bias on G's output layer (ModelConfig.g_out_bias)
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    lr_rampdown: float | None = None  # None: by resolution; the last this fraction of the run: both learning rates fall linearly to 0
    beta1: float = 0.0
    beta2: float = 0.99
    d_mu_law: float | None = None  # None: by resolution; D sees images through a mu-law compander of this mu (train/loss.py); 0: off
    loss: str = "bce"  # binary cross-entropy on D's logits (Goodfellow et al., non-saturating G loss)
    label_smoothing: float = 0.0  # one-sided: D's target for real images is 1 - label_smoothing
    code_dim: int | None = None  # InfoGAN categorical code read from z (ModelConfig.code_dim); 0 is the plain DCGAN; None: DEFAULT_CODE_DIM, 0 for a conditional run
    info_lambda: float = 1.0  # weight of the code loss in both D's and G's loss
    r1_gamma: float | None = None  # None: by resolution (RESOLUTION_DEFAULTS); R1 penalty on D's gradient at real images (Mescheder et al., 2018); 0 turns it off
    r1_every: int = 4  # lazy regularisation: the penalty on every r1_every-th D step, scaled by r1_every
    ema_kimg: float | None = None  # None: by resolution; half-life of the generator EMA in thousands of images; 0 turns it off
    ema_rampup: float | None = None  # None: by resolution; the half-life is at most this fraction of the images seen
    augment: str = "auto"  # what every image D sees goes through (dcgan_rt.train.augment); auto: by data size
    ada_kimg: float = 100.0  # ADA: thousands of images for its probability to go from 0 to 1
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA only: bf16 (or fp16 + GradScaler) autocast
    channels_last: bool = True  # NHWC memory format for G and D (faster on CUDA and on the CPU)
    sync_bn: bool = False  # torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)
    log_every: int = 10  # steps between metrics.jsonl lines / progress updates
    snapshot_kimg: float = 10.0  # sample grid + checkpoint at the first epoch end after this many thousand images; 0: every epoch
    grid_size: int = 64  # fixed latents drawn in every epoch's sample grid
    conditional: bool = False  # train on the data's labels (classes, or CelebA attributes with --attrs)
    attrs: str | None = None  # comma list of CelebA attribute names to condition on (needs conditional)
    cond_d: str = "projection"  # how D reads the label: projection (Miyato & Koyama 2018) or acgan (Odena et al. 2017)
    num_classes: int = 0  # filled in from the data for a conditional run (ModelConfig.num_classes)
    num_attrs: int = 0  # likewise for attributes

    def __post_init__(self) -> None:
        if self.code_dim is None:
            object.__setattr__(self, "code_dim", 0 if self.conditional else DEFAULT_CODE_DIM)
        for name, value in resolution_defaults(self.img_resolution).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.img_resolution not in IMG_RESOLUTIONS:
            raise UsageError(f"--img-resolution must be one of {', '.join(map(str, IMG_RESOLUTIONS))}, "
                             f"got {self.img_resolution}")
        if self.img_channels not in IMG_CHANNELS:
            raise UsageError(f"--img-channels must be 1 or 3, got {self.img_channels}")
        if sum(getattr(self, name) is not None for name in ("epochs", "steps", "kimg")) > 1:
            raise UsageError("pass one of --epochs, --steps or --kimg, not several")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name} must be at least 1, got {value}")
        if self.kimg is not None and not self.kimg > 0:
            raise UsageError(f"--kimg must be positive, got {self.kimg}")
        for name in ("batch_size", "z_dim", "g_width", "d_width", "log_every", "grid_size", "r1_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise UsageError("--batch-size must be at least 2 (BatchNorm needs more than one image)")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.lr_rampdown <= 1:
            raise UsageError(f"--lr-rampdown must be a fraction of the run from 0 (off) to 1, got {self.lr_rampdown}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 0.5:
            raise UsageError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not valid_code_dim(self.code_dim, self.z_dim):
            raise UsageError(f"--code-dim must be 0 (no code) or from 2 to --z-dim - 1 ({self.z_dim - 1}), "
                             f"got {self.code_dim}: with a small --z-dim pass a smaller --code-dim too")
        if self.info_lambda < 0:
            raise UsageError(f"--info-lambda must be 0 or positive, got {self.info_lambda}")
        if self.crop is not None and self.crop < 0:
            raise UsageError(f"--crop must be 0 (the largest centred square) or a size in pixels, got {self.crop}")
        if self.snapshot_kimg < 0:
            raise UsageError(f"--snapshot-kimg must be 0 (every epoch) or positive, got {self.snapshot_kimg}")
        if self.d_mu_law < 0:
            raise UsageError(f"--d-mu-law must be 0 (off) or positive, got {self.d_mu_law}")
        if self.r1_gamma < 0:
            raise UsageError(f"--r1-gamma must be 0 (off) or positive, got {self.r1_gamma}")
        if self.ema_kimg < 0:
            raise UsageError(f"--ema-kimg must be 0 (off) or positive, got {self.ema_kimg}")
        if self.augment not in AUGMENT_POLICIES:
            raise UsageError(f"--augment must be one of {', '.join(AUGMENT_POLICIES)}, got {self.augment!r}")
        if not self.ada_kimg > 0:
            raise UsageError(f"--ada-kimg must be positive, got {self.ada_kimg}")
        if self.device not in DEVICES:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.loss not in LOSSES:
            raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.attrs is not None and not self.conditional:
            raise UsageError("--attrs picks the attributes a conditional model is trained on: add --conditional")
        if self.attrs is not None and not [a for a in self.attrs.split(",") if a.strip()]:
            raise UsageError("--attrs is empty: name CelebA attributes, e.g. --attrs Smiling,Male,Eyeglasses")
        if self.cond_d not in COND_DISCRIMINATORS:
            raise UsageError(f"--cond-d must be one of {', '.join(COND_DISCRIMINATORS)}, got {self.cond_d!r}")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be a non-negative integer, got {self.seed}")

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(z_dim=self.z_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
                           g_width=self.g_width, d_width=self.d_width, code_dim=self.code_dim,
                           num_classes=self.num_classes, num_attrs=self.num_attrs, g_out_bias=self.g_out_bias)

    @property
    def attr_list(self) -> list[str]:
        """--attrs as a list of names, in the order given."""
        return [a.strip() for a in (self.attrs or "").split(",") if a.strip()]

    def total_steps(self, steps_per_epoch: int) -> int:
        """The run's length in steps. Runs recorded before --kimg existed, with neither
        --epochs nor --steps, trained for DEFAULT_EPOCHS: they resume as they were."""
        if self.steps is not None:
            return self.steps
        if self.kimg is not None:
            return max(1, math.ceil(self.kimg * 1000 / self.batch_size))
        return (self.epochs or DEFAULT_EPOCHS) * steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option's name: the one list the CLI, train_config.json and resume share."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Any) -> "TrainOptions":
        """Build from a recorded train_config.json "options", refusing unknown keys
        (as ModelConfig.from_dict does): an option this version does not know would
        otherwise be dropped without a word and the run resumed as something else."""
        if not isinstance(data, dict):
            raise ArtifactError(f"training options must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.names()))
        if unknown:
            raise ArtifactError(f"training options have unknown keys {unknown}; expected only {sorted(cls.names())} "
                                "(resume the run with the dcgan-rt version that made it)")
        # A run recorded before an option existed trained without it: resume it that way.
        recorded_before = {"r1_gamma": 0.0, "code_dim": 0, "augment": "off", "crop": 0, "lr_rampdown": 0.0,
                           "g_out_bias": False, "d_mu_law": 0.0}
        return cls(**{**recorded_before, **data})

    def replace(self, **changes: Any) -> "TrainOptions":
        return dataclasses.replace(self, **changes)


def check_data_source(source: str) -> None:
    """--data names a built-in source or an existing folder (checked before torch loads)."""
    if source in BUILTIN_SOURCES:
        return
    path = Path(source).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise UsageError(f"--data {source} is a file; pass a folder of images, or one of {', '.join(BUILTIN_SOURCES)}")
    raise UsageError(f"unknown --data {source!r}: use {', '.join(BUILTIN_SOURCES)} or an existing folder of images")
