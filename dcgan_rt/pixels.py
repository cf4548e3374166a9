"""Generator outputs in [-1, 1] to 8-bit pixels: the one rounding rule every path shares.

Core tier (numpy). The uint8 ONNX variant computes exactly this inside its graph
(Add, Mul, Round, Clip, Transpose, Cast, all in float32), so a PNG written from the
fp32 model and the uint8 model's output agree to within one level:

    pixel = clip(round_half_to_even((x + 1) * 127.5), 0, 255), as uint8, NCHW -> NHWC

Round half to even is what ONNX `Round`, `torch.round` and `numpy.round` do.
`to_uint8_tensor` is the same rule on a torch tensor (the torch backends and training),
written here so the rule has one home; this module never imports torch.
"""

from __future__ import annotations

import numpy as np

from dcgan_rt.onnx_card import UINT8_RULE

__all__ = ["UINT8_RULE", "to_uint8_nhwc", "to_uint8_tensor"]


def to_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), float32 arithmetic as in the graph."""
    x = np.asarray(images, dtype=np.float32)
    x = (x + np.float32(1.0)) * np.float32(127.5)
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_uint8_tensor(x):
    """torch float tensor in [-1, 1] -> uint8 tensor of the same shape and device, in float32."""
    return x.detach().float().add(1.0).mul_(127.5).round_().clamp_(0.0, 255.0).byte()
