"""The speckle measure: stray ink away from the strokes, on real digits and on spoiled copies."""

from __future__ import annotations

import torch

from dcgan_rt.train.data import load_dataset, to_float
from dcgan_rt.train.speckle import LEVEL, speckle_score


def test_real_digits_have_almost_no_speckle_and_added_dots_are_counted():
    real = to_float(load_dataset("mnist-5k", 32, 1).images[:500])  # (500, 1, 32, 32) in [-1, 1]
    clean = speckle_score(real)
    assert clean.speckle < 0.002 and clean.speckled_images < 0.1

    dotted = real.clone()
    dotted[:, :, 0, 0] = 2 * (2 * LEVEL) - 1  # one faint dot in a corner, far from every stroke
    spoiled = speckle_score(dotted)
    assert spoiled.speckled_images > 0.95
    assert spoiled.speckle > clean.speckle + 0.001  # one pixel of about 660 background ones

    faint = real.clone()
    faint[:, :, 0, 0] = 2 * (LEVEL / 2) - 1  # below the level: not a speck
    assert speckle_score(faint) == clean


def test_the_soft_edge_of_a_stroke_is_not_speckle():
    img = torch.full((1, 1, 32, 32), -1.0)
    img[..., 10:20, 15] = 1.0  # a stroke
    img[..., 10:20, 14] = 0.0  # its grey edge, one pixel away
    img[..., 10:20, 17] = -0.5  # a fainter one two pixels away
    assert speckle_score(img).speckle == 0.0
    img[..., 5, 25] = -0.5  # ten pixels away
    assert speckle_score(img).speckled_images == 1.0


def test_border_says_which_share_of_the_specks_sits_at_the_image_edge():
    img = torch.full((2, 1, 32, 32), -1.0)
    img[..., 10:20, 15] = 1.0  # a stroke in each image
    img[0, :, 16, 0] = -0.5  # a speck in the leftmost column
    img[1, :, 5, 25] = -0.5  # and one well inside
    assert speckle_score(img).border == 0.5
    assert speckle_score(img[:1]).border == 1.0 and speckle_score(img[1:]).border == 0.0
