"""The release artifact (generator.safetensors + generator.json) round-trips exactly."""

import json

import pytest
import torch

from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.train.release import load_generator
from conftest import make_model_dir


def test_round_trip_reproduces_outputs(tiny_model_dir):
    g, card = load_generator(tiny_model_dir)
    g2, _ = load_generator(tiny_model_dir / "generator.safetensors")
    z = torch.randn(4, card.model_config.z_dim)
    assert torch.equal(g(z), g2(z))
    assert card.dataset == "synthetic" and card.training_step == 3


def test_card_beside_weights_is_required(tmp_path):
    d = make_model_dir(tmp_path / "m")
    (d / "generator.json").unlink()
    with pytest.raises(ArtifactError, match="generator.json"):
        load_generator(d)


def test_truncated_weights_are_refused(tmp_path):
    d = make_model_dir(tmp_path / "m")
    w = d / "generator.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="safetensors"):
        load_generator(d)


def test_card_with_wrong_types_or_unknown_keys_is_refused(tmp_path):
    d = make_model_dir(tmp_path / "m")
    data = json.loads((d / "generator.json").read_text())
    (d / "generator.json").write_text(json.dumps({**data, "training_step": "ten"}))
    with pytest.raises(ArtifactError, match="training_step"):
        load_generator(d)
    (d / "generator.json").write_text(json.dumps({**data, "surprise": 1}))
    with pytest.raises(ArtifactError, match="unknown keys"):
        load_generator(d)


def test_mismatched_architecture_is_refused(tmp_path):
    d = make_model_dir(tmp_path / "m")
    card = ModelCard.load(d / "generator.json")
    bigger = card.to_dict()
    bigger["model_config"]["g_width"] = 16
    (d / "generator.json").write_text(json.dumps(bigger))
    with pytest.raises(ArtifactError, match="does not match"):
        load_generator(d)
