"""Images start..start+n-1 of seed S from a dcgan-rt ONNX model, without dcgan-rt.

Writes the same PNG files, pixel for pixel, as `dcgan-rt generate MODEL -n N --out DIR
--seed S --start I` (named by 9-digit global index), using only onnxruntime, numpy and
Pillow. Works with every exported variant (fp32, fp16, uint8, fp16-uint8). The
contract it relies on is docs/embedding.md; the latent formula is docs/latents.md.

    python generate.py generator.uint8.onnx -n 16 --out faces --seed 42 --start 0
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def h(x):  # lowbias32 on uint32 arrays
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def horner(coefs, x):  # ((c3*x + c2)*x + c1)*x + c0, every step in x's dtype
    acc = np.full_like(x, coefs[-1])
    for c in reversed(coefs[:-1]):
        acc = acc * x + x.dtype.type(c)
    return acc


def latents(seed, start, count, z_dim):
    """z(seed, i) for i in [start, start + count): float32 (count, z_dim), docs/latents.md."""
    with np.errstate(over="ignore"):
        k = h(np.uint32(seed) ^ np.uint32(0x85EBCA6B))
        c = h(np.arange(z_dim, dtype=np.uint32) * np.uint32(0x9E3779B9) + k)
        a = h(np.arange(start, start + count, dtype=np.uint64).astype(np.uint32) ^ k)
        b = h(a[:, None] + c[None, :])
    q = (((b >> np.uint32(8)) | np.uint32(1)).astype(np.int32) - (1 << 23)).astype(np.float32) * np.float32(2**-24)
    r = np.float32(0.180625) - q * q  # central branch, |q| <= 0.425: float32 throughout
    z = q * horner([3.3871327179, 50.434271938, 159.29113202, 59.10937472], r)
    z = z / horner([1.0, 17.895169469, 78.757757664, 67.1875636], r)
    tail = np.abs(q) > np.float32(0.425)  # tails: float64, then rounded to float32
    qt = q[tail].astype(np.float64)
    rt = np.sqrt(-np.log(0.5 - np.abs(qt)))
    near = horner([1.4234372777, 2.75681539, 1.3067284816, 0.17023821103], rt - 1.6) / horner(
        [1.0, 0.7370016425, 0.12021132975], rt - 1.6)
    far = horner([6.657905115, 3.081226386, 0.42868294337, 0.017337203997], rt - 5.0) / horner(
        [1.0, 0.24197894225, 0.012258202635], rt - 5.0)
    z[tail] = np.copysign(np.where(rt <= 5.0, near, far), qt)
    return z


def to_pixels(images, io):
    """The model's output as uint8 (N, H, W, C); float outputs by the uint8 variant's rule."""
    if io["output"]["dtype"] == "uint8":
        return images  # already NHWC uint8
    x = (images.astype(np.float32) + np.float32(1.0)) * np.float32(127.5)
    return np.clip(np.round(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("-n", type=int, required=True, help="number of images")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first image")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if not (0 <= args.seed < 2**32 and 0 <= args.start and args.start + args.n <= 2**32 and args.n >= 0):
        parser.error("--seed and the image indices must be in 0..4294967295, -n >= 0")

    if not args.model.is_file():
        parser.error(f"model {args.model} not found")
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "dcgan_rt.model_card" not in meta:
        parser.error(f"{args.model} is not a dcgan-rt generator (no dcgan_rt.model_card metadata)")
    card, io = json.loads(meta["dcgan_rt.model_card"]), json.loads(meta["dcgan_rt.io"])
    if card["format"] != "dcgan-rt/generator" or card["schema_version"] not in (1, 2):
        parser.error(f"{args.model} has model card schema_version {card['schema_version']}; this script reads 1 and 2")
    z_dim = card["model_config"]["z_dim"]

    args.out.mkdir(parents=True, exist_ok=True)
    for s in range(args.start, args.start + args.n, args.batch_size):
        count = min(args.batch_size, args.start + args.n - s)
        z = latents(args.seed, s, count, z_dim)
        pixels = to_pixels(session.run([io["output"]["name"]], {io["input"]["name"]: z})[0], io)
        for i, image in enumerate(pixels, start=s):
            tmp = args.out / f".{i:09d}.png.tmp"  # write, then rename: never a half-written PNG
            Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")
            tmp.replace(args.out / f"{i:09d}.png")
    print(f"wrote {args.n} images (seed {args.seed}, indices {args.start}..{args.start + args.n - 1}) to {args.out}")


if __name__ == "__main__":
    main()
