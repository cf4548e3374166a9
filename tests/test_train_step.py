"""The training step's regularisers: the R1 penalty and its lazy schedule.

The end-to-end behaviour (artifacts, resume, Ctrl-C) is in test_train.py; here the
Trainer runs in-process on 64 real digits at 16 px, one step at a time.
"""

from __future__ import annotations

import pytest
import torch

from dcgan_rt.errors import UsageError
from dcgan_rt.train.data import TrainData, mnist_5k_arrays, render_grayscale
from dcgan_rt.train.loop import Trainer, make_batches
from dcgan_rt.train.options import TrainOptions

TINY = dict(img_resolution=16, g_width=8, d_width=8, z_dim=16, batch_size=16, device="cpu", ema_kimg=0)


@pytest.fixture(scope="module")
def digits() -> TrainData:
    pixels, _ = mnist_5k_arrays()
    return TrainData("mnist-5k", render_grayscale(pixels[::78][:64], 16))


def _trainer(digits: TrainData, tmp_path, **opts) -> Trainer:
    return Trainer(TrainOptions(**{**TINY, **opts}), digits, tmp_path, torch.device("cpu"))


def test_r1_penalty_is_half_gamma_times_the_squared_input_gradient(digits, tmp_path):
    trainer = _trainer(digits, tmp_path, r1_gamma=3.0, r1_every=4)
    real = torch.randn(5, 1, 16, 16, requires_grad=True)
    w = torch.randn(1, 1, 16, 16, requires_grad=True)  # D's weights
    logits = (real * w).sum(dim=(1, 2, 3))  # a linear D: its gradient at every image is w
    penalty = trainer.r1_penalty(real, logits)
    assert penalty.item() == pytest.approx(3.0 / 2 * 4 * w.square().sum().item(), rel=1e-5)
    penalty.backward()  # differentiable in D's weights: it trains D, towards a flatter D
    assert torch.allclose(w.grad, 3.0 / 2 * 4 * 2 * w.detach(), rtol=1e-5)


@pytest.mark.parametrize("step, penalised", [(0, True), (1, False), (3, False), (4, True)])
def test_the_penalty_changes_d_only_on_every_r1_every_th_step(digits, tmp_path, step, penalised):
    """Same seed, same batch: D after one step with R1 on vs off differs exactly on the steps that are due."""
    after = []
    for gamma in (10.0, 0.0):
        trainer = _trainer(digits, tmp_path, r1_gamma=gamma, r1_every=4)
        trainer.state.step = step
        real = next(make_batches(digits, torch.device("cpu"), trainer.opts, 0, 0))
        trainer.train_step(real)
        after.append([p.detach().clone() for p in trainer.d.parameters()])
    same = all(torch.equal(a, b) for a, b in zip(*after))
    assert same is not penalised


@pytest.mark.parametrize("field, value, needle", [("r1_gamma", -1.0, "--r1-gamma"), ("r1_every", 0, "--r1-every")])
def test_bad_r1_options_are_refused(field, value, needle):
    with pytest.raises(UsageError, match=needle):
        TrainOptions(**{field: value})


def test_a_run_recorded_before_r1_existed_resumes_without_it():
    recorded = {k: v for k, v in TrainOptions().to_dict().items() if k not in ("r1_gamma", "r1_every")}
    assert TrainOptions.from_dict(recorded).r1_gamma == 0.0
    assert TrainOptions.from_dict(TrainOptions().to_dict()) == TrainOptions()
