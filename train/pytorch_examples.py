"""Bring your own DCGAN: import a generator trained by pytorch/examples' dcgan/main.py.

Training tier (torch). `netG_epoch_24.pth` is a state dict of pytorch/examples'
Generator: `main`, an nn.Sequential of (ConvTranspose2d(bias=False), BatchNorm2d,
ReLU) blocks and a last ConvTranspose2d followed by Tanh. That is dcgan-rt's own
generator layer for layer (train/networks.py, same `main.N` keys), so an import
is a check and a copy:

1. `torch.load(weights_only=True)` (dcgan_rt.safe_load): tensors only; a pickled
   module (`torch.save(netG)`) is refused, since unpickling it would run code;
2. the sizes are read from the tensor shapes: z_dim (nz) from the first
   transposed convolution's input channels, img_channels (nc) from the last one's
   output, g_width (ngf) from the last one's input, img_resolution from the number
   of transposed convolutions (4 px, doubled by each one after the first);
3. every key and shape must be what dcgan-rt's Generator of that config has;
   anything else (biases, other kernel sizes or layer orders, a discriminator...)
   is refused with one line naming the first difference;
4. generator.safetensors + generator.json are written with train/release.py's
   save_generator; the card records where the weights came from.

A state dict holds no activations: ReLU inside and Tanh at the end are assumed,
as pytorch/examples has them (docs/export.md lists what is not supported).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from dcgan_rt.config import IMG_CHANNELS, IMG_RESOLUTIONS, ModelConfig
from dcgan_rt.digest import sha256_file
from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.safe_load import UnsafeFileError, load_tensors
from dcgan_rt.train.networks import Generator, build_generator
from dcgan_rt.train.release import save_generator

SOURCE_FORMAT = "pytorch/examples dcgan"
_KEY = re.compile(r"^main\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_NOT_SUPPORTED = "only pytorch/examples' dcgan generator layout is supported (docs/export.md)"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by key, refusing anything that is not a flat state dict."""
    path = Path(path)
    if path.suffix.lower() in (".safetensors", ".onnx", ".engine"):
        raise UsageError(f"{path} is already a model file dcgan-rt reads: use it as it is (import reads "
                         "pytorch/examples' netG_epoch_N.pth state dicts)")
    try:
        data = load_tensors(path, what="generator state dict")
    except UnsafeFileError:
        raise UnsafeFileError(
            f"{path} holds pickled Python objects, not only tensors (a whole module saved with torch.save(netG)?); "
            "dcgan-rt will not unpickle it, since that could run code: save torch.save(netG.state_dict(), "
            "'netG.pth') where it was trained and import that") from None
    if isinstance(data, dict) and data and not all(isinstance(v, torch.Tensor) for v in data.values()):
        nested = [k for k, v in data.items() if isinstance(v, dict)]
        hint = (f" (it holds dicts under {nested[:3]}: save the generator's own state dict, "
                "torch.save(netG.state_dict(), 'netG.pth'), and import that)") if nested else ""
        raise ArtifactError(f"{path} is not a generator state dict: not every value is a tensor{hint}")
    if not isinstance(data, dict) or not data:
        raise ArtifactError(f"{path} is not a generator state dict (found {type(data).__name__}); "
                            "save one with torch.save(netG.state_dict(), 'netG.pth')")
    if all(k.startswith("module.") for k in data):  # saved from nn.DataParallel(netG)
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def infer_config(state: dict[str, torch.Tensor], source: str = "checkpoint") -> ModelConfig:
    """nz, nc, ngf and the resolution from the shapes of a pytorch/examples generator."""
    if not all(_KEY.match(k) for k in state):
        odd = next(k for k in state if not _KEY.match(k))
        raise ArtifactError(f"{source} has key {odd!r}, not a pytorch/examples DCGAN generator "
                            f"(keys main.0.weight, main.1.weight, ...): {_NOT_SUPPORTED}")
    convs = sorted((int(_KEY.match(k).group(1)), v) for k, v in state.items()
                   if k.endswith(".weight") and v.ndim == 4)
    if "main.2.weight" in state and "main.1.weight" not in state:
        raise ArtifactError(f"{source} looks like a discriminator (netD_epoch_N.pth): import the generator, "
                            "netG_epoch_N.pth")
    if len(convs) < 2:
        raise ArtifactError(f"{source} has {len(convs)} transposed convolution(s); a DCGAN generator has 3 to 6: "
                            f"{_NOT_SUPPORTED}")
    first, last = convs[0][1], convs[-1][1]
    resolution = 4 * 2 ** (len(convs) - 1)
    if resolution not in IMG_RESOLUTIONS:
        raise ArtifactError(f"{source} has {len(convs)} transposed convolutions, which would make {resolution} px "
                            f"images; dcgan-rt supports {', '.join(map(str, IMG_RESOLUTIONS))} px: {_NOT_SUPPORTED}")
    z_dim, img_channels, g_width = first.shape[0], last.shape[1], last.shape[0]
    if img_channels not in IMG_CHANNELS:
        raise ArtifactError(f"{source} makes {img_channels}-channel images; dcgan-rt supports 1 (grayscale) "
                            "or 3 (RGB)")
    return ModelConfig(z_dim=z_dim, img_resolution=resolution, img_channels=img_channels, g_width=g_width,
                       d_width=g_width)


def build_imported(state: dict[str, torch.Tensor], config: ModelConfig, source: str = "checkpoint") -> Generator:
    """dcgan-rt's Generator holding these weights (float32, eval mode); refuses any other layout."""
    generator = build_generator(config, init=False)
    expected = generator.state_dict()
    state = dict(state)
    for key in expected:  # absent from state dicts saved before PyTorch 0.4.1; unused in eval mode
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    for key, value in state.items():
        if key not in expected:
            what = "a bias" if key.endswith(".bias") and value.ndim == 1 and _is_conv(expected, key) else "a layer"
            raise ArtifactError(f"{source} has {what} dcgan-rt's generator does not ({key!r}, shape "
                                f"{tuple(value.shape)}): {_NOT_SUPPORTED}")
        if value.shape != expected[key].shape:
            raise ArtifactError(f"{source}: {key!r} has shape {tuple(value.shape)} where a DCGAN generator with "
                                f"nz={config.z_dim}, ngf={config.g_width}, nc={config.img_channels} at "
                                f"{config.img_resolution} px has {tuple(expected[key].shape)}: {_NOT_SUPPORTED}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ArtifactError(f"{source} lacks {missing[0]!r} (a BatchNorm layer after every transposed convolution "
                            f"but the last): {_NOT_SUPPORTED}")
    converted = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    if not all(torch.isfinite(v).all() for v in converted.values() if v.is_floating_point()):
        raise ArtifactError(f"{source} holds NaN or infinite weights: the training run diverged; "
                            "import an earlier epoch's checkpoint")
    generator.load_state_dict(converted, strict=True)
    return generator.eval()


def _is_conv(expected: dict[str, torch.Tensor], bias_key: str) -> bool:
    weight = expected.get(bias_key[: -len("bias")] + "weight")
    return weight is not None and weight.ndim == 4


def import_checkpoint(checkpoint: str | Path, out: str | Path, dataset: str = "unknown") -> Path:
    """Import a pytorch/examples dcgan generator state dict as a dcgan-rt release artifact in `out`
    (generator.safetensors + generator.json); returns the weights path."""
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: choose a new or empty directory")
    taken = [name for name in ("generator.safetensors", "generator.json") if (out / name).exists()]
    if taken:
        raise UsageError(f"--out {out} already holds {taken[0]}: choose another directory (nothing was written)")
    if not dataset or "/" in dataset or "\\" in dataset:
        raise UsageError(f"--dataset is the data set's name (e.g. celeba), not a path; got {dataset!r}")
    state = read_state_dict(checkpoint)
    source = checkpoint.name
    generator = build_imported(state, infer_config(state, source), source)
    card = ModelCard(
        model_config=generator.cfg, dataset=dataset, weights="raw", training_step=0,
        # The file's name, never its path: a shared artifact must not tell its maker's directory layout.
        extra={"imported_from": {"format": SOURCE_FORMAT, "file": source, "sha256": sha256_file(checkpoint)}},
    )
    out.mkdir(parents=True, exist_ok=True)
    return save_generator(generator, card, out)
