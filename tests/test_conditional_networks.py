"""The conditional generator (cGAN): a learned label embedding beside z, ONNX-exportable
with two inputs; unconditional generators keep the plain DCGAN's parameters."""

import contextlib
import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dcgan_rt.config import ModelConfig
from dcgan_rt.train.networks import LABEL_EMBED_DIM, build_discriminator, build_generator

TINY = dict(z_dim=12, img_resolution=16, g_width=4, d_width=4)


def test_unconditional_generator_has_only_the_dcgan_parameters():
    g = build_generator(ModelConfig(**TINY))
    names = [n for n, _ in g.named_parameters()]
    assert all(n.startswith("main.") for n in names)
    assert g.main[0].weight.shape[0] == TINY["z_dim"]


@pytest.mark.parametrize("cond", [{"num_classes": 10}, {"num_attrs": 3}])
def test_label_changes_the_image_and_needs_to_be_given(cond):
    cfg = ModelConfig(**TINY, **cond)
    g = build_generator(cfg).eval()
    assert g.main[0].weight.shape[0] == TINY["z_dim"] + LABEL_EMBED_DIM
    z = torch.randn(2, 12, generator=torch.Generator().manual_seed(0)).repeat(2, 1)
    if cfg.num_classes:
        label = torch.tensor([0, 0, 7, 7])
    else:
        label = torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 1], [1, 0, 1]], dtype=torch.float32)
    images = g(z, label)
    assert images.shape == (4, 1, 16, 16)
    assert not torch.allclose(images[:2], images[2:])  # same z, other label: another image
    with pytest.raises(ValueError, match="label"):
        g(z)
    assert build_discriminator(cfg)(images, label).shape == (4, 1)


@pytest.mark.parametrize("cond", [{"num_classes": 10}, {"num_attrs": 3}, {"num_classes": 4, "code_dim": 3}])
def test_conditional_generator_exports_to_a_two_input_onnx_model(cond, tmp_path):
    cfg = ModelConfig(**TINY, **cond)
    torch.manual_seed(1)
    g = build_generator(cfg).eval()
    if cfg.num_classes:
        label = torch.tensor([1, 3, 0, 2, 3], dtype=torch.int64)
    else:
        label = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.float32)
    z = torch.randn(5, 12, generator=torch.Generator().manual_seed(2))
    batch = torch.export.Dim("N", min=1, max=1 << 20)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            g, (z[:2], label[:2]), input_names=["z", "label"], output_names=["images"],
            dynamic_shapes={"z": {0: batch}, "label": {0: batch}}, dynamo=True, external_data=False,
        )
    path = tmp_path / "g.onnx"
    path.write_bytes(program.model_proto.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z", "label"]
    (out,) = session.run(None, {"z": z.numpy(), "label": label.numpy()})
    with torch.no_grad():
        expected = g(z, label).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_unconditional_discriminator_is_the_plain_dcgan():
    d = build_discriminator(ModelConfig(**TINY, code_dim=3))
    assert [n for n, _ in d.named_parameters()] == [n for n, _ in d.main.named_parameters(prefix="main")]
    assert d(torch.zeros(2, 1, 16, 16)).shape == (2, 4)


@pytest.mark.parametrize("cond", [{"num_classes": 10}, {"num_attrs": 3}])
def test_projection_d_scores_the_same_image_differently_under_another_label(cond):
    cfg = ModelConfig(**TINY, **cond)
    torch.manual_seed(0)
    d = build_discriminator(cfg, cond_d="projection").eval()
    images = torch.rand(1, 1, 16, 16).repeat(2, 1, 1, 1) * 2 - 1
    label = torch.tensor([1, 4]) if cfg.num_classes else torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0]])
    out = d(images, label)
    assert out.shape == (2, 1) and out[0, 0] != out[1, 0]
    with pytest.raises(ValueError, match="label"):
        d(images)


@pytest.mark.parametrize("cond", [{"num_classes": 10}, {"num_attrs": 3}])
def test_acgan_d_classifies_and_its_loss_falls_when_it_learns_the_label(cond):
    """The auxiliary classifier's loss (train/loss.py) is what teaches D the labels: a few
    steps on two fixed images with different labels make it fall."""
    from dcgan_rt.train.loss import DCGANLoss
    from dcgan_rt.train.options import TrainOptions

    cfg = ModelConfig(**TINY, **cond)
    torch.manual_seed(0)
    d = build_discriminator(cfg, cond_d="acgan")
    labels = cfg.num_classes or cfg.num_attrs
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    label = torch.arange(8) % 10 if cfg.num_classes else (torch.arange(8)[:, None] >> torch.arange(3) & 1).float()
    assert d(images).shape == (8, 1 + labels)
    loss = DCGANLoss(d, d, TrainOptions(z_dim=12, code_dim=0, conditional=True, cond_d="acgan"))
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    first = loss.label_loss(loss.run_D(images, d, label), label).item()
    for _ in range(30):
        value = loss.label_loss(loss.run_D(images, d, label), label)
        opt.zero_grad()
        value.backward()
        opt.step()
    assert first > 0 and value.item() < 0.5 * first
