"""The PyTorch backend: the reference every other backend is compared with.

Core tier in placement, but it imports torch (and dcgan_rt.train) when built;
without torch it raises MissingDependencyError. `build_torch_backend` is what
`generate --backend torch` runs: on a CUDA GPU the fast path of
dcgan_rt.backends.torch_cuda (BatchNorm folded, CUDA graphs, fp16 on request),
else `TorchBackend` on the CPU: the unmodified generator under inference_mode,
channels_last. Pixels use the same float32 rule as dcgan_rt.pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcgan_rt.backends import FLOAT_NCHW, UINT8_NHWC, Backend
from dcgan_rt.batch import Batch
from dcgan_rt.errors import NumericalError, UsageError
from dcgan_rt.extras import import_optional
from dcgan_rt.pixels import to_uint8_tensor


def import_torch():
    return import_optional("torch", "the torch backend (and reading generator.safetensors)", extra="train")


def check_release_files(model: str | Path) -> None:
    """generator.json and the safetensors header, checked before torch is imported: a damaged
    run directory fails in a fraction of a second, as it does for `dcgan-rt export`."""
    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.model_info import safetensors_header
    from dcgan_rt.model_path import resolve_model

    resolved = resolve_model(model)
    if resolved.kind == "safetensors":
        ModelCard.load(resolved.card_path)
        safetensors_header(resolved.path)


def build_torch_backend(model: str | Path, gpu: int | None = None, threads: int | None = None, uint8: bool = True,
                        precision: str | None = None) -> Backend:
    """The torch backend for MODEL: on CUDA GPU `gpu` (default 0) when this PyTorch sees one,
    else the CPU. precision: None or "fp32" (the default), "fp16" (CUDA only, opt-in)."""
    check_release_files(model)
    torch = import_torch()
    if torch.cuda.is_available():
        from dcgan_rt.backends.torch_cuda import TorchCudaBackend

        return TorchCudaBackend(model, gpu=gpu or 0, uint8=uint8, precision=precision or "fp32")
    if gpu:
        raise UsageError(f"--gpu {gpu} asked for, but this PyTorch sees no CUDA GPU")
    if precision not in (None, "fp32"):
        raise UsageError(f"--precision {precision} needs a CUDA GPU (on the CPU it would be emulated): "
                         "drop it to run fp32")
    return TorchBackend(model, device="cpu", threads=threads, uint8=uint8)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: str | Path, device: str = "auto", gpu: int = 0, threads: int | None = None,
                 uint8: bool = True):
        check_release_files(model)
        torch = import_torch()
        from dcgan_rt.train.release import load_generator

        if device == "auto":
            device = f"cuda:{gpu}" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError("device cuda asked for, but this PyTorch sees no CUDA GPU")
        if threads:
            torch.set_num_threads(threads)
        generator, card = load_generator(model, device)
        self._torch = torch
        self._device = torch.device(device)
        self._generator = generator
        if self._device.type == "cpu":
            # oneDNN's transposed convolutions are faster in channels-last layout.
            self._generator = generator.to(memory_format=torch.channels_last)
            detail = f"CPU, {torch.get_num_threads()} threads"
        else:
            detail = f"{torch.cuda.get_device_name(self._device)}"
        super().__init__(card, device=str(self._device), detail=detail, precision="fp32",
                         output=UINT8_NHWC if uint8 else FLOAT_NCHW)
        self.path = Path(model)

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        batch = self._check_batch(batch)
        torch = self._torch
        with torch.inference_mode():
            inputs = [torch.from_numpy(a).to(self._device, non_blocking=True)
                      for a in (batch.z, batch.labels) if a is not None]  # z, and a conditional model's label
            x = self._generator(*inputs)  # (N, C, H, W) in [-1, 1]
            if self.output == FLOAT_NCHW:
                return x.contiguous().cpu().numpy()
            has_nan = ~torch.isfinite(x).all()  # NaN or inf
            x = to_uint8_tensor(x).permute(0, 2, 3, 1).contiguous().cpu()  # (N, H, W, C)
            if has_nan.item():
                raise NumericalError("the generator produced NaN or infinite values; the model weights are broken "
                                     "(retrain)")
            return x.numpy()
