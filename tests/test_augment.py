"""Augmentation of what D sees (train/augment.py) and the objective's one door to D (train/loss.py).

In-process, tiny: 16 px digits, a few steps. What a user would notice: augmentations
change what D sees and never what G draws; gradients (R1's double backward included)
pass through them; ADA's probability follows D's overfitting signal and resumes exactly.
"""

from __future__ import annotations

import pytest
import torch

from dcgan_rt.errors import UsageError
from dcgan_rt.train.augment import ADA_INTERVAL, AugmentPipe
from dcgan_rt.train.batches import make_batches
from dcgan_rt.train.data import TrainData, mnist_5k_arrays, render_grayscale
from dcgan_rt.train.loop import Trainer
from dcgan_rt.train.options import TrainOptions
from dcgan_rt.train.placement import amp_dtype_for, sync_bn_keeps_d_local

TINY = dict(img_resolution=16, g_width=8, d_width=8, z_dim=16, code_dim=4, batch_size=16, device="cpu", ema_kimg=0)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> TrainData:
    pixels, _ = mnist_5k_arrays()
    return TrainData("mnist-5k", render_grayscale(pixels[::78][:64], 16))


def _images(n=8, c=3, res=16, seed=0) -> torch.Tensor:
    return torch.rand(n, c, res, res, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_diffaug_changes_every_image_and_keeps_shape_and_dtype():
    x = _images()
    y = AugmentPipe("diffaug", CPU, seed=0)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert all(not torch.allclose(a, b) for a, b in zip(x, y))


def test_ada_at_p_zero_is_the_identity_and_at_p_one_is_diffaug():
    x = _images()
    ada = AugmentPipe("ada", CPU, seed=0)
    assert torch.allclose(ada(x), x, atol=1e-6)  # p starts at 0: D sees the images as they are
    ada = AugmentPipe("ada", CPU, seed=0)
    ada.p = torch.ones(())
    assert torch.equal(ada(x), AugmentPipe("diffaug", CPU, seed=0)(x))  # same draws, all applied


def test_the_same_seed_draws_the_same_augmentations():
    x = _images()
    assert torch.equal(AugmentPipe("diffaug", CPU, seed=3)(x), AugmentPipe("diffaug", CPU, seed=3)(x))
    assert not torch.equal(AugmentPipe("diffaug", CPU, seed=3)(x), AugmentPipe("diffaug", CPU, seed=4)(x))


def test_translation_moves_pixels_and_fills_with_zero():
    pipe = AugmentPipe("diffaug", CPU, seed=0)
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1) + 1  # no zeros of its own
    shifted = pipe._translate(x, ratio=0.5)
    moved = [not torch.equal(s, x[0]) for s in shifted]
    assert any(moved) and not all(moved)  # shifts of -2..2 in each axis: some images stay put
    for s in shifted:
        kept = s[s != 0]
        assert set(kept.tolist()) <= set(x[0].flatten().tolist())  # only moved, never blended


def test_gradients_and_r1s_double_backward_pass_through_the_augmentation():
    """R1 differentiates D's input gradient; every operation must be twice differentiable
    (ADA's grid_sample is not: pytorch issue 34704)."""
    x = _images(c=1).requires_grad_(True)
    w = torch.randn(1, 1, 16, 16, requires_grad=True)
    logits = (AugmentPipe("diffaug", CPU, seed=0)(x) * w).sum(dim=(1, 2, 3))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    assert grad.abs().sum() > 0
    grad.square().sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_lowers_it_when_not():
    ada = AugmentPipe("ada", CPU, seed=0, ada_kimg=1)
    for _ in range(ADA_INTERVAL):
        ada.accumulate(torch.full((16,), 5.0))  # D calls every real image real: overfitting
    ada.update(images_per_step=16)
    raised = ada.p.item()
    assert raised == pytest.approx(16 * ADA_INTERVAL / 1000)
    for _ in range(ADA_INTERVAL):
        ada.accumulate(torch.full((16,), -5.0))
    ada.update(images_per_step=16)
    assert ada.p.item() == pytest.approx(0.0)
    ada.accumulate(torch.full((16,), -5.0))
    ada.update(images_per_step=16)
    assert ada.p.item() == 0.0  # clamped


def test_samples_never_carry_the_augmentation(digits, tmp_path):
    """Augmentation is inside the loss only: the generator's own output is untouched."""
    trainer = Trainer(TrainOptions(**TINY, augment="diffaug"), digits, tmp_path, CPU)
    z = torch.randn(4, 16)
    trainer.g.eval()
    with torch.no_grad():
        assert torch.equal(trainer.g(z), trainer.g(z))
    assert trainer.loss.augment is trainer.augment


def test_every_image_d_sees_goes_through_run_d(digits, tmp_path, monkeypatch):
    trainer = Trainer(TrainOptions(**TINY, augment="diffaug", r1_every=1), digits, tmp_path, CPU)
    seen = []
    real_call = AugmentPipe.__call__
    monkeypatch.setattr(AugmentPipe, "__call__", lambda self, x: seen.append(x.shape[0]) or real_call(self, x))
    trainer.train_step(next(make_batches(digits, CPU, trainer.opts, 0, 0)))
    assert seen == [16, 16, 16]  # D's real batch (also R1's), D's fake batch, G's fake batch


def test_ada_probability_resumes_exactly(digits, tmp_path):
    """A checkpoint carries p, ADA's statistics and the pipe's random state."""
    opts = TrainOptions(**TINY, augment="ada", ada_kimg=0.5)
    a = Trainer(opts, digits, tmp_path / "a", CPU)
    for real in make_batches(digits, CPU, opts, 0, 0):
        a.train_step(real)
        a.state.step += 1
    state = a.augment.state_dict()
    b = Trainer(opts, digits, tmp_path / "b", CPU)
    b.augment.load_state_dict(state)
    x = _images(c=1)
    assert a.augment.p.item() > 0 and b.augment.p.item() == a.augment.p.item()
    assert torch.equal(a.augment(x), b.augment(x))


def test_bad_augment_options_are_refused():
    with pytest.raises(UsageError, match="--augment must be one of auto, off, diffaug, ada"):
        TrainOptions(augment="mixup")
    with pytest.raises(UsageError, match="--ada-kimg"):
        TrainOptions(ada_kimg=0)


def test_native_bf16_only_from_ampere_on():
    """T4 (7.5) and V100 (7.0) emulate bf16: they train in fp16 with a GradScaler."""
    assert amp_dtype_for((7, 5)) == torch.float16 and amp_dtype_for((7, 0)) == torch.float16
    assert amp_dtype_for((8, 0)) == torch.bfloat16 and amp_dtype_for((9, 0)) == torch.bfloat16


def test_r1_penalty_is_the_same_through_an_fp16_loss_scaler(digits, tmp_path):
    """The AMP recipe for gradient penalties: differentiate the scaled output, then unscale."""
    trainer = Trainer(TrainOptions(**TINY, r1_gamma=2.0), digits, tmp_path, CPU)
    real = _images(c=1).requires_grad_(True)
    w = torch.randn(1, 1, 16, 16)
    plain = trainer.loss.r1_penalty(real, (real * w).sum(dim=(1, 2, 3)))
    trainer.loss.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    scaled = trainer.loss.r1_penalty(real, (real * w).sum(dim=(1, 2, 3)))
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-6)


def test_sync_bn_keeps_d_per_rank_only_when_r1_needs_its_double_backward():
    assert sync_bn_keeps_d_local(TrainOptions(sync_bn=True, r1_gamma=1.0))
    assert not sync_bn_keeps_d_local(TrainOptions(sync_bn=True, r1_gamma=0.0))
    assert not sync_bn_keeps_d_local(TrainOptions(sync_bn=False))


def test_default_length_and_augmentation_follow_the_data_size():
    """At 64 px and up, 80 epochs where that is a sensible image budget, else the nearer
    bound; below 64 px (digits) the measured time to the quality bar, whatever the set's
    size; augmentation by default only for small sets."""
    from dcgan_rt.train.defaults import MAX_KIMG, MIN_KIMG, SMALL_RES_KIMG, SMALL_SET, resolve_for_data

    digits = resolve_for_data(TrainOptions(), 5000)
    assert digits.kimg == SMALL_RES_KIMG < 80 * 5000 / 1000 and digits.epochs is None and digits.augment == "off"
    assert digits.total_steps(156) == SMALL_RES_KIMG * 1000 / 32  # what `dcgan-rt train` runs with no flags
    assert resolve_for_data(TrainOptions(img_resolution=16), 60_000).kimg == SMALL_RES_KIMG
    face_opts = TrainOptions(img_resolution=64)
    assert resolve_for_data(face_opts, 5000).epochs == 80  # 400k images: inside the budget
    faces = resolve_for_data(face_opts, 400)
    assert faces.kimg == MIN_KIMG and faces.epochs is None and faces.augment == "ada"
    assert faces.total_steps(12) == int(MIN_KIMG * 1000 / 32) + (MIN_KIMG * 1000 % 32 > 0)
    celeba = resolve_for_data(face_opts, 202_599)
    assert celeba.kimg == MAX_KIMG and celeba.augment == "off"
    assert resolve_for_data(TrainOptions(), SMALL_SET).augment == "off"
    given = resolve_for_data(TrainOptions(steps=7, augment="diffaug"), 400)  # what the user asked for stays
    assert given.steps == 7 and given.kimg is None and given.augment == "diffaug"


def test_the_digit_recipe_against_speckle_leaves_the_face_recipe_alone():
    """Below 64 px a wider D, a longer EMA, a learning-rate ramp-down and G's output bias
    (measured against speckle, docs/training.md "Time to quality" and "The generator's
    output bias"); at 64 px and up the faces' recipe as it was."""
    digits, faces = TrainOptions(), TrainOptions(img_resolution=64)
    assert (digits.g_width, digits.d_width, digits.r1_gamma, digits.g_out_bias) == (64, 32, 1.0, True)
    assert faces.g_out_bias is False
    assert (digits.ema_kimg, digits.ema_rampup, digits.lr_rampdown) == (60.0, 0.3, 0.3)
    assert (faces.g_width, faces.d_width, faces.r1_gamma) == (64, 32, 0.1)
    assert (faces.ema_kimg, faces.ema_rampup, faces.lr_rampdown) == (20.0, 0.05, 0.0)
    given = TrainOptions(ema_kimg=0, lr_rampdown=0)  # what the user asked for stays
    assert (given.ema_kimg, given.lr_rampdown) == (0, 0)


def test_one_length_option_at_a_time():
    with pytest.raises(UsageError, match="one of --epochs, --steps or --kimg"):
        TrainOptions(epochs=3, kimg=10)
    with pytest.raises(UsageError, match="--kimg must be positive"):
        TrainOptions(kimg=0)


def test_runs_recorded_before_these_defaults_resume_as_they_were():
    """A train_config.json without kimg/augment/crop (the previous round's) trained 80 epochs,
    without augmentation, on the largest centred square: that is what it resumes with."""
    recorded = {"data": "mnist-5k", "epochs": None, "steps": None, "img_resolution": 64, "g_width": 48,
                "d_width": 16, "r1_gamma": 1.0, "batch_size": 32}
    opts = TrainOptions.from_dict(recorded)
    assert opts.total_steps(12) == 80 * 12 and opts.augment == "off" and opts.crop == 0
    assert (opts.g_width, opts.d_width, opts.r1_gamma) == (48, 16, 1.0)  # recorded, not today's 64-px defaults
