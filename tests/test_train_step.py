"""The training step's extras: the R1 penalty and its lazy schedule, InfoGAN's code loss.

The end-to-end behaviour (artifacts, resume, Ctrl-C) is in test_train.py; here the
Trainer runs in-process on 64 real digits at 16 px, one step at a time.
"""

from __future__ import annotations

import pytest
import torch

from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.train.batches import make_batches
from dcgan_rt.train.data import TrainData, mnist_5k_arrays, render_grayscale
from dcgan_rt.train.loop import Trainer
from dcgan_rt.train.networks import code_index
from dcgan_rt.train.options import TrainOptions

# d_mu_law 0: these tests are about the step's terms, each alone (the compander has tests of its own below).
TINY = dict(img_resolution=16, g_width=8, d_width=8, z_dim=16, code_dim=4, batch_size=16, device="cpu", ema_kimg=0,
            d_mu_law=0.0)


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
    penalty = trainer.loss.r1_penalty(real, logits)
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


def test_a_run_recorded_before_r1_and_the_code_existed_resumes_without_them():
    new = ("r1_gamma", "r1_every", "code_dim", "info_lambda")
    recorded = {k: v for k, v in TrainOptions().to_dict().items() if k not in new}
    old = TrainOptions.from_dict(recorded)
    assert old.r1_gamma == 0.0 and old.code_dim == 0 and old.model_config.code_dim == 0
    assert TrainOptions.from_dict(TrainOptions().to_dict()) == TrainOptions()


def test_recorded_options_with_an_unknown_key_are_refused_not_dropped():
    """As ModelConfig refuses unknown keys: a train_config.json option this version does not
    know would otherwise vanish and the run resume as something else."""
    with pytest.raises(ArtifactError, match=r"unknown keys \['mixup'\].*dcgan-rt version that made it"):
        TrainOptions.from_dict({**TrainOptions().to_dict(), "mixup": 0.5})


def _code_accuracy(trainer: Trainer) -> float:
    """How often D's code logits name the code G was given, on fresh latents."""
    z = torch.randn(512, trainer.opts.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        out = trainer.d.eval()(trainer.g.eval()(z))
    trainer.d.train(), trainer.g.train()
    return (out[:, 1:].argmax(dim=1) == code_index(z, trainer.opts.code_dim)).float().mean().item()


def test_the_code_loss_makes_each_code_a_different_kind_of_image(digits, tmp_path):
    """After a short run D reads G's code off its images far better than chance (1/4);
    with the loss weighted 0 it cannot (nothing makes G's codes differ)."""
    accuracy = {}
    for info_lambda in (1.0, 0.0):
        trainer = _trainer(digits, tmp_path, code_dim=4, info_lambda=info_lambda, r1_gamma=0.0)
        for epoch in range(20):
            for real in make_batches(digits, torch.device("cpu"), trainer.opts, epoch, 0):
                trainer.train_step(real)
                trainer.state.step += 1
        accuracy[info_lambda] = _code_accuracy(trainer)
    assert accuracy[1.0] > 0.8 and accuracy[0.0] < 0.5, accuracy


def test_train_step_reports_the_code_loss(digits, tmp_path):
    trainer = _trainer(digits, tmp_path, code_dim=4)
    values = trainer.train_step(next(make_batches(digits, torch.device("cpu"), trainer.opts, 0, 0)))
    assert values[4].item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=0.2)  # chance at step 0
    plain = _trainer(digits, tmp_path, code_dim=0)
    values = plain.train_step(next(make_batches(digits, torch.device("cpu"), plain.opts, 0, 0)))
    assert values[4].item() == 0.0


@pytest.mark.parametrize("changes, needle", [({"code_dim": 1}, "--code-dim"), ({"code_dim": 16, "z_dim": 16}, "--code-dim"),
                                             ({"info_lambda": -1.0}, "--info-lambda")])
def test_bad_code_options_are_refused(changes, needle):
    with pytest.raises(UsageError, match=needle):
        TrainOptions(**changes)


def test_lr_rampdown_lowers_both_rates_linearly_to_zero_over_the_runs_end(digits, tmp_path):
    """--lr-rampdown 0.5 on an 8-step run: full rates for 4 steps, then 4/4, 3/4, 2/4, 1/4 of them."""
    trainer = _trainer(digits, tmp_path, steps=8, lr_rampdown=0.5, lr_g=2e-3, lr_d=1e-3)
    seen = []
    for real in [b for epoch in (0, 1) for b in make_batches(digits, torch.device("cpu"), trainer.opts, epoch, 0)]:
        trainer.train_step(real)
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
        trainer.state.step += 1
    scale = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert seen == [pytest.approx((2e-3 * f, 1e-3 * f)) for f in scale]
    off = _trainer(digits, tmp_path, steps=8, lr_rampdown=0.0)
    assert [off.lr_scale(step) for step in range(8)] == [1.0] * 8


def test_bad_lr_rampdown_is_refused_and_old_runs_resume_without_it():
    with pytest.raises(UsageError, match="--lr-rampdown"):
        TrainOptions(lr_rampdown=1.5)
    recorded = {k: v for k, v in TrainOptions().to_dict().items() if k != "lr_rampdown"}
    assert TrainOptions.from_dict(recorded).lr_rampdown == 0.0


def test_mu_law_brightens_faint_ink_and_keeps_black_and_white():
    from dcgan_rt.train.loss import mu_law

    brightness = torch.tensor([0.0, 0.02, 0.09, 0.5, 1.0])
    seen = (mu_law(brightness * 2 - 1, 8.0) + 1) / 2
    assert seen[0].item() == pytest.approx(0.0, abs=1e-6) and seen[-1].item() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(seen[1:-1] > brightness[1:-1]) and torch.all(seen.diff() > 0)  # brighter, order kept
    assert seen[2].item() == pytest.approx(0.25, abs=0.01)  # a faint 0.09 speck looks like 0.25 ink to D


def test_d_sees_the_companded_images_and_r1_is_taken_there(digits, tmp_path):
    """With d_mu_law D's logits are those of the companded batch; R1's gradient is taken
    with respect to what D saw; 0 leaves the images as they are."""
    from dcgan_rt.train.loss import mu_law

    real = next(make_batches(digits, torch.device("cpu"), TrainOptions(**TINY), 0, 0))
    fake = torch.rand_like(real) * 0.2 - 1  # faint ink everywhere
    for mu in (0.0, 8.0):
        trainer = _trainer(digits, tmp_path, d_mu_law=mu, r1_gamma=1e4)  # the penalty dominates the loss
        trainer.d.eval()  # BatchNorm-free comparisons of the same D
        view = mu_law if mu else (lambda x, _mu: x)
        with torch.no_grad():
            _, d_real, d_fake, _ = trainer.loss.discriminator_loss(real, fake, None, False)
            assert torch.allclose(d_real, trainer.d(view(real, mu))[:, 0])
            assert torch.allclose(d_fake, trainer.d(view(fake, mu))[:, 0])
        loss_r1, *_ = trainer.loss.discriminator_loss(real, fake, None, True)
        loss_plain, *_ = trainer.loss.discriminator_loss(real, fake, None, False)
        seen = view(real, mu).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(trainer.d(seen)[:, 0].sum(), seen)
        r1 = grad.square().sum(dim=(1, 2, 3)).mean() * (1e4 / 2 * trainer.opts.r1_every)
        assert (loss_r1 - loss_plain).item() == pytest.approx(r1.item(), rel=1e-4)


def test_the_compander_is_the_digit_default_refused_when_negative_and_off_in_older_runs():
    assert TrainOptions().d_mu_law == 16.0 and TrainOptions(img_resolution=64).d_mu_law == 0.0
    assert TrainOptions(d_mu_law=0).d_mu_law == 0
    with pytest.raises(UsageError, match="--d-mu-law"):
        TrainOptions(d_mu_law=-1.0)
    recorded = {k: v for k, v in TrainOptions().to_dict().items() if k != "d_mu_law"}
    assert TrainOptions.from_dict(recorded).d_mu_law == 0.0  # trained without it: resumes without it
