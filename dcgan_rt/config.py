"""The generator/discriminator architecture as one frozen, JSON-serialisable config.

Core tier (no torch): the same config describes a PyTorch module, an ONNX file
and a TensorRT engine, and is validated before anything is built from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dcgan_rt.errors import ArtifactError, UsageError

IMG_RESOLUTIONS = (16, 32, 64, 128)
IMG_CHANNELS = (1, 3)


def valid_code_dim(code_dim: object, z_dim: int) -> bool:
    """0 (no code), or a code of 2 or more entries that leaves at least one entry of z free."""
    return isinstance(code_dim, int) and not isinstance(code_dim, bool) and (code_dim == 0 or 2 <= code_dim < z_dim)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DCGAN pair (Radford et al., 2015).

    g_width / d_width are the channel counts at the highest resolution
    (pytorch/examples' ngf / ndf); each halving of the resolution doubles them.
    code_dim > 0 adds InfoGAN's categorical code (Chen et al., 2016): the generator reads
    the first code_dim entries of z as a one-hot code (their argmax, so a uniform
    categorical draw from the same N(0, I) latents) and the discriminator gets code_dim
    more outputs that predict it. 0 is the plain DCGAN (and what an artifact without the
    key means).
    g_out_bias adds a learned per-channel bias to the generator's last (output) layer,
    which pytorch/examples' DCGAN leaves out: without it a border pixel, which gets half
    the taps of an inner one from the last stride-2 transposed convolution, cannot reach
    black as easily, and digits' backgrounds show faint specks along the image edges
    (docs/training.md, "Speckle"). False (and what an artifact without the key means) is
    the plain DCGAN.
    num_classes > 0 makes the pair class-conditional (the generator takes a class index
    as a second input); num_attrs > 0 makes it attribute-conditional (a 0/1 vector of
    num_attrs entries). At most one of the two is non-zero; 0 and 0 is unconditional.
    """

    z_dim: int = 100
    img_resolution: int = 32
    img_channels: int = 1
    g_width: int = 64
    d_width: int = 64
    code_dim: int = 0
    num_classes: int = 0
    num_attrs: int = 0
    g_out_bias: bool = False

    def __post_init__(self) -> None:
        if self.img_resolution not in IMG_RESOLUTIONS:
            raise UsageError(
                f"img_resolution must be one of {', '.join(map(str, IMG_RESOLUTIONS))}, "
                f"got {self.img_resolution}"
            )
        if self.img_channels not in IMG_CHANNELS:
            raise UsageError(f"img_channels must be 1 or 3, got {self.img_channels}")
        for name in ("z_dim", "g_width", "d_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not valid_code_dim(self.code_dim, self.z_dim):
            raise UsageError(f"code_dim must be 0 (no code) or from 2 to z_dim - 1 ({self.z_dim - 1}), "
                             f"got {self.code_dim!r}")
        for name in ("num_classes", "num_attrs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UsageError(f"{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.g_out_bias, bool):
            raise UsageError(f"g_out_bias must be true or false, got {self.g_out_bias!r}")
        if self.num_classes == 1:
            raise UsageError("num_classes must be 0 (unconditional) or at least 2, got 1")
        if self.num_classes and self.num_attrs:
            raise UsageError("a model is conditioned on classes or on attributes, not both "
                             f"(num_classes={self.num_classes}, num_attrs={self.num_attrs})")

    @property
    def conditional(self) -> bool:
        """True when the generator takes a label input beside z."""
        return bool(self.num_classes or self.num_attrs)

    @property
    def num_upsamplings(self) -> int:
        """Stride-2 blocks after the 4x4 projection: 16 -> 2, 32 -> 3, 64 -> 4, 128 -> 5."""
        return self.img_resolution.bit_length() - 3

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.img_channels, self.img_resolution, self.img_resolution)

    def to_dict(self) -> dict[str, int | bool]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ModelConfig":
        """Build from JSON data, refusing unknown keys and wrong types."""
        if not isinstance(data, dict):
            raise ArtifactError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArtifactError(f"model config has unknown keys {unknown}; expected only {sorted(known)}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in data.items():
            flag = isinstance(defaults[key], bool)  # each key has its default's type: bool or int
            if not isinstance(value, int) or isinstance(value, bool) != flag:
                raise ArtifactError(f"model config key {key!r} must be {'true or false' if flag else 'an integer'}, "
                                    f"got {value!r}")
        try:
            return cls(**data)
        except UsageError as exc:
            raise ArtifactError(f"invalid model config: {exc}") from None
