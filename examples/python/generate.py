"""Images start..start+n-1 of seed S from a dcgan-rt ONNX model, without dcgan-rt.

Writes the same PNG files, pixel for pixel, as `dcgan-rt generate MODEL -n N --out DIR
--seed S --start I` (named by 9-digit global index), using only onnxruntime, numpy and
Pillow. Works with every exported variant (fp32, fp16, uint8, fp16-uint8). The
contract it relies on is docs/embedding.md; the latent formula is docs/latents.md.

A conditional model (the card's `labels` is not null) also takes a `label` input: image i
gets y(seed, i), the default label rule of docs/latents.md §5 (classes: i mod K;
attributes: drawn from the card's joint distribution), or what `--label` asks for
(`--label 3` / `--label dog`, `--label Smiling=1,Male=0`), exactly as `dcgan-rt generate`
does, and `labels.csv` is written beside the images as generate writes it.

    python generate.py generator.uint8.onnx -n 16 --out faces --seed 42 --start 0
    python generate.py digits.uint8.onnx -n 10 --out sevens --label 7
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


def label_uniforms(seed, indices):
    """u(seed, i) in [0, 1): the attributes' draw for image i, on the labels' own hash stream."""
    with np.errstate(over="ignore"):
        key = h(np.uint32(seed) ^ np.uint32(0x4C41424C))
        a = h(indices.astype(np.uint32) ^ key)
    return (a >> np.uint32(8)).astype(np.float64) * 2.0**-24


class Labels:
    """y(seed, i) of a conditional model: the default rule, or the one class / the attribute
    values asked for with --label (docs/latents.md §5); `error` is called with a message for
    a label this model cannot take."""

    def __init__(self, card_labels, text, error):
        self.kind, self.names = card_labels["kind"], list(card_labels["names"])
        self.fixed_class = None
        if self.kind == "class":
            if text is not None and "=" in text:
                error(f"--label {text} names attributes, but this model's labels are classes: {self.names}")
            if text is not None:
                self.fixed_class = self._class_index(text.strip(), error)
            return
        joint = card_labels["joint"]
        self.vectors = np.asarray(joint["vectors"], dtype=np.int64)
        self.cumulative = np.cumsum(np.asarray(joint["weights"], dtype=np.float64))
        if text is None:
            return
        if "=" not in text:
            error(f"--label {text} names a class, but this model's labels are attributes: give values like "
                  f"--label {self.names[0]}=1 (attributes: {self.names})")
        fixed = {}
        for part in text.split(","):
            name, sep, value = (s.strip() for s in part.partition("="))
            if not sep or value not in ("0", "1") or name in fixed:
                error(f"--label {text}: attribute values look like Smiling=1,Male=0, each attribute once, 0 or 1")
            if name not in self.names:
                error(f"--label {name}: unknown attribute; this model's attributes are {self.names}")
            fixed[self.names.index(name)] = int(value)
        weights = np.diff(self.cumulative, prepend=0.0)
        if len(fixed) < len(self.names):  # the others drawn from the vectors that have the fixed values
            keep = np.all([self.vectors[:, p] == v for p, v in fixed.items()], axis=0)
            if not keep.any():
                error(f"no training image has {text}: give every attribute ({self.names}) to ask for it anyway")
            self.vectors, weights = self.vectors[keep], weights[keep]
        else:
            self.vectors, weights = np.array([[fixed[p] for p in range(len(self.names))]]), np.ones(1)
        self.cumulative = np.cumsum(weights / weights.sum())

    def _class_index(self, text, error):
        if text in self.names:  # a name first, then an index
            return self.names.index(text)
        if text.lstrip("-").isdigit():
            if 0 <= int(text) < len(self.names):
                return int(text)
            error(f"--label {text}: class index out of range; this model has classes 0..{len(self.names) - 1}")
        error(f"--label {text!r}: unknown class; this model's classes are {self.names}")

    def __call__(self, seed, indices):
        """int64 (n,) class indices, or float32 (n, A) 0/1 vectors: the `label` input."""
        if self.kind == "class" and self.fixed_class is not None:
            return np.full(len(indices), self.fixed_class, dtype=np.int64)
        if self.kind == "class":
            return indices % len(self.names)
        j = np.searchsorted(self.cumulative, label_uniforms(seed, indices), side="right")
        return self.vectors[np.minimum(j, len(self.cumulative) - 1)].astype(np.float32)

    def csv(self, seed, indices):
        """labels.csv as `dcgan-rt generate` writes it: index,label (class names) or index,<attribute>..."""
        cell = lambda t: f'"{t.replace(chr(34), chr(34) * 2)}"' if any(c in t for c in ',"\n') else t  # noqa: E731
        values = self(seed, indices)
        if self.kind == "class":
            rows = ["index,label", *(f"{i},{cell(self.names[y])}" for i, y in zip(indices.tolist(), values.tolist()))]
        else:
            rows = [",".join(["index", *map(cell, self.names)]),
                    *(f"{i}," + ",".join(str(int(b)) for b in row) for i, row in zip(indices.tolist(), values))]
        return "\n".join(rows) + "\n"


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
    parser.add_argument("--label", help="conditional models: a class (name or index) or attribute values "
                        "like Smiling=1,Male=0; default: the label rule of docs/latents.md")
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
    inputs = io.get("inputs", [io["input"]])  # files from before labels list only `input`
    if card.get("labels") is None:
        if args.label is not None:
            parser.error("--label needs a conditional model; this one is unconditional, so drop it")
        labels = None
    else:
        labels = Labels(card["labels"], args.label, parser.error)

    args.out.mkdir(parents=True, exist_ok=True)
    for s in range(args.start, args.start + args.n, args.batch_size):
        count = min(args.batch_size, args.start + args.n - s)
        feed = {inputs[0]["name"]: latents(args.seed, s, count, z_dim)}
        if labels is not None:
            feed[inputs[1]["name"]] = labels(args.seed, np.arange(s, s + count, dtype=np.int64))
        pixels = to_pixels(session.run([io["output"]["name"]], feed)[0], io)
        for i, image in enumerate(pixels, start=s):
            tmp = args.out / f".{i:09d}.png.tmp"  # write, then rename: never a half-written PNG
            Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")
            tmp.replace(args.out / f"{i:09d}.png")
    if labels is not None:
        tmp = args.out / ".labels.csv.tmp"
        tmp.write_text(labels.csv(args.seed, np.arange(args.start, args.start + args.n, dtype=np.int64)), newline="")
        tmp.replace(args.out / "labels.csv")
    print(f"wrote {args.n} images (seed {args.seed}, indices {args.start}..{args.start + args.n - 1}) to {args.out}")


if __name__ == "__main__":
    main()
