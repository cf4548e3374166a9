"""z(seed, index) is a pure function: same vector whatever the batch, order or range."""

import json
import struct

import numpy as np
import pytest

from dcgan_rt.errors import UsageError
from dcgan_rt.latents import latent_range, latents
from latent_reference import z_vector

VECTORS = json.loads((__import__("pathlib").Path(__file__).parent / "data" / "latent_vectors.json").read_text())


def _hex(a: np.ndarray) -> list[str]:
    return [format(struct.unpack("<I", struct.pack("<f", float(v)))[0], "08x") for v in a]


@pytest.mark.parametrize("case", VECTORS["vectors"], ids=lambda c: f"seed{c['seed']}-i{c['index']}")
def test_pinned_vectors_bit_exact(case):
    z = latents(case["seed"], [case["index"]], VECTORS["z_dim"])[0]
    assert _hex(z) == case["z_hex"]


def test_matches_scalar_reference_including_tails():
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 2**32, size=(60, 2))
    fast = np.stack([latents(int(s), [int(i)], 64)[0] for s, i in pairs])
    ref = np.array([z_vector(int(s), int(i), 64) for s, i in pairs], dtype=np.float32)
    assert np.array_equal(fast, ref)
    assert np.abs(fast).max() > 2.0  # the tail branch was exercised


def test_independent_of_batching_and_order():
    whole = latent_range(5, 0, 1000, 100)
    parts = np.concatenate([latent_range(5, s, n, 100) for s, n in [(0, 1), (1, 6), (7, 64), (71, 929)]])
    assert np.array_equal(whole, parts)
    shuffled = np.random.default_rng(0).permutation(1000)
    assert np.array_equal(latents(5, shuffled, 100), whole[shuffled])


def test_seeds_and_indices_give_different_vectors():
    a, b = latent_range(0, 0, 2, 100)
    assert not np.allclose(a, b)
    assert not np.allclose(latents(0, [0], 100), latents(1, [0], 100))


def test_standard_normal_statistics():
    z = latent_range(3, 0, 20000, 100).ravel()
    assert abs(z.mean()) < 0.005
    assert abs(z.std() - 1.0) < 0.005
    # tail mass beyond 3 sigma of a standard normal is 0.27%
    assert 0.0022 < np.mean(np.abs(z) > 3) < 0.0032


def test_odd_z_dim_and_empty():
    assert latents(0, [0, 1, 2], 7).shape == (3, 7)
    assert latents(0, [], 7).shape == (0, 7)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_out_of_range_seed_is_refused(seed):
    with pytest.raises(UsageError, match="seed"):
        latents(seed, [0], 4)


def test_negative_index_is_refused():
    with pytest.raises(UsageError, match="indices"):
        latents(0, [-1], 4)
