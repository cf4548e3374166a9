"""A run's snapshots: the sample grid of fixed latents, checkpoint.pt, the release artifact, and resuming.

Training tier (torch). `Snapshots` is the Trainer's (dcgan_rt.train.loop) half that
writes and reads the run directory: at a snapshot the EMA generator's BatchNorm
statistics are recalibrated, the fixed latents (and, for a conditional run, one grid row
per class) are drawn to samples/epoch_NNNN.png, then checkpoint.pt and
generator.safetensors + generator.json are written. `load` puts a checkpoint back so
that a resumed run continues exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_rt.errors import DcganRtError
from dcgan_rt.latents import latent_range
from dcgan_rt.model_card import ModelCard
from dcgan_rt.pixels import to_uint8_tensor
from dcgan_rt.train import plots
from dcgan_rt.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dcgan_rt.train.conditional import LabelSpec, calibration_labels, grid_labels
from dcgan_rt.train.ema import recalibrate_batchnorm
from dcgan_rt.train.faces import default_crop
from dcgan_rt.train.networks import Generator
from dcgan_rt.train.options import TrainOptions
from dcgan_rt.train.release import save_generator

SAMPLES_DIR = "samples"
CALIBRATION_IMAGES = 512  # recalibrate_batchnorm's default 4 batches of 128


def fixed_samples(opts: TrainOptions, spec: LabelSpec | None) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
    """(latents, labels or None, grid columns) of every sample grid of a run."""
    z_dim = opts.model_config.z_dim
    if spec is None:
        z = torch.from_numpy(latent_range(opts.seed, 0, opts.grid_size, z_dim))
        return z, None, int(math.sqrt(opts.grid_size)) or None
    # one row per class (or common attribute vector), the same latents in every row
    cols = int(math.sqrt(opts.grid_size)) or 1
    labels, rows = grid_labels(spec, cols)
    return torch.from_numpy(latent_range(opts.seed, 0, cols, z_dim)).repeat(rows, 1), labels, cols


def read_resume(run_dir: Path) -> dict[str, Any]:
    """The checkpoint `--resume run_dir` continues from."""
    if not run_dir.is_dir():
        raise DcganRtError(f"--resume {run_dir}: run directory not found (pass one that dcgan-rt train made, "
                           "e.g. runs/latest)")
    return load_checkpoint(run_dir)


class Snapshots:
    """The Trainer's snapshot half; it uses the Trainer's networks, optimizers and counters."""

    def release_generator(self) -> Generator:
        """The EMA generator with BatchNorm statistics measured for its own weights (or the
        raw generator, eval mode, when the EMA is off)."""
        if self.ema is None:
            return self.g
        labels = (calibration_labels(self.label_spec, CALIBRATION_IMAGES, self.opts.seed)
                  if self.label_spec is not None else None)
        recalibrate_batchnorm(self.ema.module, self.opts.z_dim, self.device, seed=self.opts.seed, labels=labels)
        return self.ema.module

    @torch.no_grad()
    def sample_fixed(self, generator: Generator) -> np.ndarray:
        was_training = generator.training
        generator.eval()
        try:
            z = self.sample_z.to(self.device)
            images = (generator(z) if self.sample_labels is None
                      else generator(z, self.sample_labels.to(self.device))).float()
        finally:
            generator.train(was_training)
        return to_uint8_tensor(images).cpu().numpy()

    def save_epoch_outputs(self, epoch_number: int) -> None:
        """Sample grid for `epoch_number`, then checkpoint and release artifact."""
        generator = self.release_generator()
        self.state.generator = generator
        plots.save_grid(self.sample_fixed(generator), self.run_dir / SAMPLES_DIR / f"epoch_{epoch_number:04d}.png",
                        cols=self.grid_cols)
        self.save_checkpoint()
        self.save_release(generator)

    def save_checkpoint(self) -> None:
        s = self.state
        save_checkpoint(self.run_dir, {
            "G": self.g.state_dict(), "D": self.d.state_dict(),
            "G_ema": self.ema.state_dict() if self.ema is not None else {},
            "opt_G": self.opt_g.state_dict(), "opt_D": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "augment": self.augment.state_dict() if self.augment is not None else {},
            "step": s.step, "epoch": s.epoch, "batch_in_epoch": s.batch_in_epoch, "cur_nimg": s.cur_nimg,
            "rng": rng_state(self.noise),
            "model_config": self.opts.model_config.to_dict(),
        })

    def save_release(self, generator: Generator) -> None:
        card = ModelCard(
            self.opts.model_config, training_step=self.state.step, dataset=self.data.name,
            dataset_digest=self.data.digest,
            weights="ema" if self.ema is not None else "raw",
            extra={"run": self.run_dir.name, "seed": self.opts.seed, "epoch": self.state.epoch,
                   "crop": self.opts.crop if self.opts.crop is not None else default_crop(self.opts.data),
                   "images_seen": self.state.cur_nimg},
            labels=self.label_spec.card_labels() if self.label_spec is not None else None,
        )
        was_training = generator.training
        save_generator(generator.eval(), card, self.run_dir)
        generator.train(was_training)

    def _set_lr(self, scale: float) -> None:
        for opt, lr in ((self.opt_g, self.opts.lr_g), (self.opt_d, self.opts.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def load(self, ckpt: dict[str, Any]) -> None:
        self.g.load_state_dict(ckpt["G"])
        self.d.load_state_dict(ckpt["D"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["G_ema"])
        self.opt_g.load_state_dict(ckpt["opt_G"])
        self.opt_d.load_state_dict(ckpt["opt_D"])
        self._set_lr(1.0)  # the state dict brings the old rate; a resume may lower it
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.augment is not None and ckpt.get("augment"):
            self.augment.load_state_dict(ckpt["augment"])
        set_rng_state(ckpt["rng"], self.noise)
        s = self.state
        s.step, s.epoch, s.batch_in_epoch, s.cur_nimg = (
            int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"]), int(ckpt["cur_nimg"]))
        self._snapshot_nimg = s.cur_nimg
