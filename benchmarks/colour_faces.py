"""A folder of RGB "colour faces" made from the ORL photos, for the RGB path where no colour face set is offline.

Run:
  python benchmarks/colour_faces.py OUT_DIR [-n 400] [--img-resolution 64]

No colour face photos can be had offline here, so this colours the 400 grayscale ORL
photos (`--data orl`, AT&T Laboratories Cambridge: research use, with acknowledgement)
person by person: each of the 40 people gets a skin tone (a fixed palette from pale to
deep brown, nudged per person) and a light colour, and every pixel's gray level is
mapped through a gradient from a dark, warm shadow through the skin tone to a
near-white highlight, lit by that light. Every photo of one person has the same
colouring, so colour carries identity the way skin and lighting do in real photos,
and a model must learn colour that depends on the face, not one global tint.

The result is deterministic (a pure function of n and the resolution): the same
PNG files every time, so RGB measurements can be repeated. These are not real colour
photos (hair, eyes and background take the person's tint too); they test that the
RGB path trains, samples and evaluates, not how real colour faces look.

`make_colour_faces` is what tests/test_faces.py and benchmarks/quality_faces.py call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# Skin tones, pale to deep (sRGB), the kind of spread a face data set has.
SKIN_TONES = np.array([
    (255, 224, 196), (241, 198, 160), (224, 172, 129), (198, 140, 98),
    (170, 112, 74), (141, 85, 54), (110, 66, 42), (84, 50, 33),
], dtype=np.float64) / 255
PHOTOS_PER_PERSON, PEOPLE = 10, 40


def person_palette(person: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shadow, skin, light) colours of one person, each (3,) in [0, 1]."""
    rng = np.random.default_rng(1_000 + person)
    skin = np.clip(SKIN_TONES[person % len(SKIN_TONES)] * rng.uniform(0.92, 1.08, 3), 0, 1)
    shadow = skin * np.array([0.45, 0.30, 0.28]) * rng.uniform(0.8, 1.1)  # dark and warm
    light = np.clip(np.array([1.0, 0.97, 0.92]) + rng.uniform(-0.08, 0.08, 3), 0.8, 1.0)  # warm or cool lamp
    return shadow, skin, light


def colourise(gray: np.ndarray, person: int) -> np.ndarray:
    """(H, W) uint8 gray -> (H, W, 3) uint8: black -> shadow -> skin -> highlight, then the light."""
    shadow, skin, light = person_palette(person)
    highlight = 0.6 * skin + 0.4
    stops = np.array([0.0, 0.25, 0.65, 1.0])
    colours = np.stack([np.zeros(3), shadow, skin, highlight])  # (4, 3)
    t = gray.astype(np.float64) / 255
    rgb = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1) * light
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def make_colour_faces(out_dir: str | Path, n: int = 400, img_resolution: int = 64) -> list[Path]:
    """Write n colour faces as `<out_dir>/p<person>_<photo>.png` (img_resolution square) and
    return their paths. n below 400 takes photo 1 of every person first, then photo 2, ...,
    so a few images already cover many people."""
    from PIL import Image

    from dcgan_rt.train.data import load_dataset

    if not 1 <= n <= PEOPLE * PHOTOS_PER_PERSON:
        raise ValueError(f"n must be from 1 to {PEOPLE * PHOTOS_PER_PERSON} (the ORL photos), got {n}")
    faces = load_dataset("orl", img_resolution, 1)  # the same crop and resize as --data orl
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        person, photo = k % PEOPLE, k // PEOPLE
        index = person * PHOTOS_PER_PERSON + photo
        path = out / f"p{person + 1:02d}_{photo + 1:02d}.png"
        Image.fromarray(colourise(faces.images[index, 0].numpy(), person)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--img-resolution", type=int, default=64)
    args = parser.parse_args()
    paths = make_colour_faces(args.out_dir, args.n, args.img_resolution)
    print(f"{len(paths)} colour faces in {args.out_dir}")


if __name__ == "__main__":
    main()
