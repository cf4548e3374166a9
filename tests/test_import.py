"""`dcgan-rt import`: a generator trained by pytorch/examples' dcgan/main.py becomes a dcgan-rt model
that makes the same images, and checkpoints of any other layout are refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from dcgan_rt.latents import latents
from dcgan_rt.pixels import to_uint8_nhwc
from conftest import assert_clean_error, run_cli
from export_helpers import invoke

NZ, NGF, NC = 8, 4, 3  # tiny, so the test is fast; pytorch/examples' defaults are 100, 64, 3


class Generator(nn.Module):
    """pytorch/examples dcgan/main.py's Generator, layer for layer. The original reads the module
    globals nz, ngf, nc; here they are arguments."""

    def __init__(self, ngpu=1, nz=NZ, ngf=NGF, nc=NC, conv_bias=False, final=None):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=conv_bias),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # state size. (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            final or nn.Tanh(),
            # state size. (nc) x 64 x 64
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    """pytorch/examples' Discriminator (what netD_epoch_N.pth holds)."""

    def __init__(self, nc=NC, ndf=NGF):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )


def trained_like(module: nn.Module, seed: int = 0) -> nn.Module:
    """Weights spread enough that images use the whole [-1, 1] range, and BatchNorm running
    statistics from train-mode passes, as a training run leaves them."""
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.3)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.2)
            nn.init.normal_(m.bias, 0.0, 0.2)
    module.train()
    with torch.no_grad():
        for _ in range(5):
            module(torch.randn(32, NZ, 1, 1))
    return module.eval()


def reference(module: nn.Module, seed: int, n: int) -> np.ndarray:
    """The pytorch/examples module's own images for dcgan-rt's latents z(seed, 0..n-1)."""
    z = torch.from_numpy(latents(seed, np.arange(n), NZ)).reshape(n, NZ, 1, 1)
    with torch.no_grad():
        return module.eval()(z).numpy()


@pytest.fixture(scope="module")
def examples_checkpoint(tmp_path_factory):
    netG = trained_like(Generator())
    path = tmp_path_factory.mktemp("examples") / "netG_epoch_24.pth"
    torch.save(netG.state_dict(), path)
    return netG, path


def test_imported_generator_makes_the_examples_images(examples_checkpoint, tmp_path):
    netG, ckpt = examples_checkpoint
    model = tmp_path / "imported"
    proc = run_cli("import", ckpt, "--out", model, "--dataset", "celeba", check=True)
    assert "nz=8, ngf=4, nc=3, 64x64 px" in proc.stdout, proc.stdout

    card = json.loads((model / "generator.json").read_text())
    assert {"z_dim": NZ, "g_width": NGF, "img_channels": NC, "img_resolution": 64}.items() <= card["model_config"].items()
    assert card["dataset"] == "celeba" and card["weights"] == "raw"
    source = card["extra"]["imported_from"]
    assert source["format"] == "pytorch/examples dcgan" and source["file"] == "netG_epoch_24.pth"
    assert str(ckpt.parent) not in json.dumps(card)  # the file's name, never where it lay

    ref = reference(netG, seed=3, n=16)
    assert ref.std() > 0.3  # a real test: images span the range, not a flat grey

    from dcgan_rt.backends import select_backend

    with select_backend(model, "torch", uint8=False) as backend:  # what generate runs, in fp32
        ours = backend(latents(3, np.arange(16), NZ))
    assert np.abs(ours - ref).max() <= 1e-4  # DESIGN §5, fp32

    out = tmp_path / "images"
    run_cli("generate", model, "-n", 16, "--seed", 3, "--out", out, "--format", "npy", "--backend", "torch",
            check=True)
    images = np.load(out / "images-000000.npy")
    assert images.shape == (16, 64, 64, 3)
    assert np.abs(images.astype(int) - to_uint8_nhwc(ref).astype(int)).max() <= 1  # DESIGN §5, uint8


def test_export_and_sample_work_on_an_imported_model(examples_checkpoint, tmp_path):
    netG, ckpt = examples_checkpoint
    model = tmp_path / "imported"
    assert invoke("import", ckpt, "--out", model).returncode == 0
    export = invoke("export", model)  # checks ONNX Runtime against PyTorch within §5's bounds
    assert export.returncode == 0 and "pass" in export.stdout, export.stdout
    onnx_file = model / "export" / "generator.onnx"
    out = tmp_path / "from_onnx"
    run_cli("generate", onnx_file, "-n", 8, "--out", out, "--format", "npy", check=True)
    images = np.load(out / "images-000000.npy")
    assert np.abs(images.astype(int) - to_uint8_nhwc(reference(netG, 0, 8)).astype(int)).max() <= 1

    grid = tmp_path / "grid.png"
    assert invoke("sample", model, "--out", grid, "--grid", "2x2").returncode == 0 and grid.is_file()


def test_data_parallel_and_old_checkpoints_import(tmp_path):
    """nn.DataParallel's 'module.' prefix, fp16 weights and state dicts saved before
    BatchNorm had num_batches_tracked (PyTorch < 0.4.1) all import to the same images."""
    netG = trained_like(Generator(nc=1), seed=1)
    state = {f"module.{k}": v.half() if v.is_floating_point() else v
             for k, v in netG.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "netG.pth")
    assert invoke("import", tmp_path / "netG.pth", "--out", tmp_path / "m").returncode == 0

    from dcgan_rt.train.release import load_generator

    g, card = load_generator(tmp_path / "m")
    assert card.model_config.img_channels == 1
    z = torch.from_numpy(latents(0, np.arange(4), NZ))
    with torch.no_grad():
        expected = netG.half().float()(z.reshape(4, NZ, 1, 1))
        assert (g(z) - expected).abs().max() <= 1e-4


def _save(tmp_path, obj, name="netG.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _with_bias(tmp_path):
    return _save(tmp_path, Generator(conv_bias=True).state_dict())


def _module(tmp_path):
    return _save(tmp_path, Generator())  # the whole pickled module, not its state dict


def _discriminator(tmp_path):
    return _save(tmp_path, Discriminator().state_dict(), "netD_epoch_24.pth")


def _eight_px(tmp_path):
    state = {k: v for k, v in Generator().state_dict().items() if int(k.split(".")[1]) < 3}
    state["main.3.weight"] = torch.zeros(NGF * 8, NC, 4, 4)
    return _save(tmp_path, state)


def _kernel_5(tmp_path):
    state = Generator().state_dict()
    state["main.3.weight"] = torch.zeros(NGF * 8, NGF * 4, 5, 5)
    return _save(tmp_path, state)


def _training_checkpoint(tmp_path):
    return _save(tmp_path, {"netG": Generator().state_dict(), "epoch": 3})


def _safetensors(tmp_path):
    path = tmp_path / "generator.safetensors"
    path.write_bytes(b"{}")
    return path


def _other_network(tmp_path):
    return _save(tmp_path, {"fc.weight": torch.zeros(4, 4)})


@pytest.mark.parametrize("make, code, needle", [
    (_module, 1, "pickled"),
    (_with_bias, 1, "bias"),
    (_discriminator, 1, "discriminator"),
    (_eight_px, 1, "8 px"),
    (_kernel_5, 1, "shape"),
    (_training_checkpoint, 1, "state_dict()"),
    (_other_network, 1, "fc.weight"),
    (_safetensors, 2, "use it as it is"),
], ids=["pickled-module", "conv-bias", "discriminator", "8px", "kernel-5", "nested", "other-network",
        "safetensors"])
def test_other_layouts_are_refused_in_one_line(tmp_path, make, code, needle):
    ckpt = make(tmp_path)
    out = tmp_path / "out"
    proc = invoke("import", ckpt, "--out", out)
    assert_clean_error(proc, code, needle)
    assert len((proc.stdout + proc.stderr).strip().splitlines()) == 1
    assert not out.exists()


def test_existing_model_is_not_overwritten(examples_checkpoint, tmp_path):
    _, ckpt = examples_checkpoint
    out = tmp_path / "m"
    out.mkdir()
    (out / "generator.json").write_text("{}")
    assert_clean_error(invoke("import", ckpt, "--out", out), 2, "already holds generator.json")
    assert (out / "generator.json").read_text() == "{}"
    assert_clean_error(invoke("import", ckpt, "--out", tmp_path / "n", "--dataset", "/home/me/faces"), 2,
                       "not a path")
