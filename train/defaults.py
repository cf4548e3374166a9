"""Training defaults that depend on the data: how long to train and whether to augment.

Training tier (no torch). "80 epochs" is 400k images on mnist-5k, 32k on 400 face
photos (far too few) and 16M on CelebA (days). The default length is an image
budget instead: 80 epochs where that is between MIN_KIMG and MAX_KIMG thousand
images, else the nearer bound. Below 64 px (digits) it is SMALL_RES_KIMG thousand
images whatever the set's size: the measured time to the quality bar (docs/training.md,
"Time to quality"), which keeps the default digit run within 5 minutes on 2 CPU cores.
And a
discriminator memorises a small set unless every image it sees is augmented
(train/augment.py), while on mnist-5k augmentation measured worse: `--augment auto`
turns ADA on below SMALL_SET images. The curves that chose these numbers are in
docs/training.md ("Faces"). Resolved values are what train_config.json records, so
a resumed run keeps them whatever the defaults become.
"""

from __future__ import annotations

from dcgan_rt.train.options import DEFAULT_EPOCHS, TrainOptions

MIN_KIMG = 200.0  # small sets: what fits 20 minutes on 2 CPU cores at 64 px (ORL: FID against kimg, docs/training.md)
MAX_KIMG = 5000.0  # big sets: 25 epochs of CelebA, past where DCGAN's published CelebA runs stop improving
SMALL_RES_KIMG = 256.0  # below 64 px: with the speckle recipe both seeds pass the digit bar (docs/training.md, "Time to quality")
SMALL_SET = 2000  # below this many images, D sees augmented images by default (ADA)


def default_length(num_images: int, img_resolution: int = 64) -> dict:
    """Below 64 px {"kimg": SMALL_RES_KIMG}; else {"epochs": DEFAULT_EPOCHS} where that many
    epochs fall inside the budget, or the nearer bound as {"kimg": ...}."""
    if img_resolution < 64:
        return {"kimg": SMALL_RES_KIMG}
    kimg = DEFAULT_EPOCHS * num_images / 1000
    if MIN_KIMG <= kimg <= MAX_KIMG:
        return {"epochs": DEFAULT_EPOCHS}
    return {"kimg": min(max(kimg, MIN_KIMG), MAX_KIMG)}


def default_augment(num_images: int) -> str:
    return "ada" if num_images < SMALL_SET else "off"


def resolve_for_data(opts: TrainOptions, num_images: int) -> TrainOptions:
    """`opts` with the length (when none of --epochs/--steps/--kimg was given) and
    `--augment auto` decided for a data set of `num_images` images."""
    changes: dict = {}
    if opts.epochs is None and opts.steps is None and opts.kimg is None:
        changes.update(default_length(num_images, opts.img_resolution))
    if opts.augment == "auto":
        changes["augment"] = default_augment(num_images)
    return opts.replace(**changes) if changes else opts
