"""A benchmark's model: a freshly initialised generator saved as a run directory.

DCGAN init, BatchNorm statistics from three training-mode batches (so BatchNorm folds to
something like a trained model's), seed 0: the same weights in every benchmark.
"""

from __future__ import annotations

from pathlib import Path


def random_run(cfg, run: Path, dataset: str = "random-init"):
    """Save the generator of `cfg` into `run` (created); return the generator, in eval mode."""
    import torch

    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.train.networks import build_generator
    from dcgan_rt.train.release import save_generator

    torch.manual_seed(0)
    g = build_generator(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(64, cfg.z_dim))
    run.mkdir(parents=True)
    save_generator(g.eval(), ModelCard(cfg, dataset=dataset), run)
    return g
