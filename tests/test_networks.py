"""The DCGAN networks have the right shapes for every resolution and channel count."""

import pytest
import torch
from torch import nn

from dcgan_rt.config import ModelConfig
from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.latents import latent_range
from dcgan_rt.train.networks import build_discriminator, build_generator, code_index, select_code


@pytest.mark.parametrize("img_resolution", [16, 32, 64, 128])
@pytest.mark.parametrize("img_channels", [1, 3])
def test_shapes(img_resolution, img_channels):
    cfg = ModelConfig(z_dim=12, img_resolution=img_resolution, img_channels=img_channels, g_width=4, d_width=4)
    g, d = build_generator(cfg), build_discriminator(cfg)
    images = g(torch.randn(3, 12))
    assert images.shape == (3, img_channels, img_resolution, img_resolution)
    assert images.abs().max() <= 1.0
    assert d(images).shape == (3, 1)


def test_radford_structure():
    g = build_generator(ModelConfig(img_resolution=32, g_width=8))
    kinds = [type(m) for m in g.main]
    assert kinds.count(nn.ConvTranspose2d) == 4 and kinds.count(nn.BatchNorm2d) == 3
    assert isinstance(g.main[-1], nn.Tanh)
    d = build_discriminator(ModelConfig(img_resolution=32, d_width=8))
    assert isinstance(d.main[0], nn.Conv2d) and isinstance(d.main[1], nn.LeakyReLU)  # no BN first
    assert d.main[1].negative_slope == 0.2


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    g = build_generator(ModelConfig(img_resolution=64, g_width=32))
    conv = g.main[0].weight
    assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
    bn = g.main[1]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.bias.abs().max().item() == 0


@pytest.mark.parametrize("kwargs", [{"img_resolution": 48}, {"img_channels": 2}, {"z_dim": 0}])
def test_bad_config_is_a_usage_error(kwargs):
    with pytest.raises(UsageError):
        ModelConfig(**kwargs)


def test_config_json_round_trip_and_validation():
    cfg = ModelConfig(z_dim=64, img_resolution=64, img_channels=3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ArtifactError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "ngf": 3})
    with pytest.raises(ArtifactError, match="integer"):
        ModelConfig.from_dict({**cfg.to_dict(), "z_dim": "100"})


def test_code_generator_reads_only_the_argmax_of_the_code_entries():
    cfg = ModelConfig(z_dim=12, img_resolution=16, g_width=4, d_width=4, code_dim=4)
    g = build_generator(cfg).eval()
    z = torch.randn(6, 12)
    rescaled = z.clone()
    rescaled[:, :4] = rescaled[:, :4] * 3 + 1  # same argmax in every row
    with torch.no_grad():
        assert torch.equal(g(z), g(rescaled))
        swapped = z.clone()
        swapped[:, :4] = -z[:, :4]  # the minimum becomes the maximum: another code
        assert (g(swapped) - g(z)).abs().amax(dim=(1, 2, 3)).min() > 0
    coded = select_code(z, 4)
    assert torch.equal(coded[:, :4].sum(dim=1), torch.ones(6)) and torch.equal(coded[:, 4:], z[:, 4:])
    assert build_discriminator(cfg)(g(z)).shape == (6, 5)


def test_codes_are_equally_likely_under_the_standard_latents():
    """Every code value (every kind of image) comes up 1/code_dim of the time."""
    codes = code_index(torch.from_numpy(latent_range(0, 0, 20_000, 100)), 10)
    shares = torch.bincount(codes, minlength=10) / 20_000
    assert shares.min() > 0.09 and shares.max() < 0.11


@pytest.mark.parametrize("code_dim", [1, 12, -1])
def test_bad_code_dim_is_a_usage_error(code_dim):
    with pytest.raises(UsageError, match="code_dim"):
        ModelConfig(z_dim=12, code_dim=code_dim)


def test_an_artifact_without_code_dim_is_the_plain_dcgan():
    recorded = {k: v for k, v in ModelConfig().to_dict().items() if k != "code_dim"}
    assert ModelConfig.from_dict(recorded).code_dim == 0
