"""Model card schema version 2 (DESIGN §8): what it adds, and version-1 cards still read."""

from __future__ import annotations

import json

import pytest

from dcgan_rt.config import ModelConfig
from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.model_card import SCHEMA_VERSION, ModelCard, default_inputs


def _v1_card() -> dict:
    """A card exactly as round one wrote it (schema_version 1, no version-2 keys)."""
    return {"format": "dcgan-rt/generator", "schema_version": 1, "tool_version": "0.1.0",
            "model_config": {"z_dim": 16, "img_resolution": 16, "img_channels": 1, "g_width": 8,
                             "d_width": 8, "code_dim": 0},
            "value_range": [-1.0, 1.0], "training_step": 3, "dataset": "mnist-5k", "weights": "ema",
            "extra": {"seed": 0}}


def test_a_version_1_card_reads_as_version_2_with_one_z_input():
    card = ModelCard.from_dict(_v1_card(), "old generator.json")
    assert card.schema_version == SCHEMA_VERSION == 2
    assert card.inputs == [{"name": "z", "dtype": "float32", "shape": ["N", 16]}]
    assert (card.labels, card.precision, card.calibration, card.dataset_digest) == (None, "fp32", None, None)
    assert ModelCard.from_json(card.to_json()) == card


def test_a_version_1_card_with_version_2_keys_is_refused():
    with pytest.raises(ArtifactError, match="version-2 keys"):
        ModelCard.from_dict({**_v1_card(), "precision": "int8"}, "generator.json")


def test_conditional_cards_list_the_label_input_and_name_every_class():
    cfg = ModelConfig(z_dim=16, img_resolution=16, num_classes=3)
    card = ModelCard(cfg, labels={"kind": "class", "names": ["a", "b", "c"]})
    assert card.inputs[1] == {"name": "label", "dtype": "int64", "shape": ["N"]}
    assert ModelCard.from_json(card.to_json()) == card
    attrs = ModelCard(ModelConfig(z_dim=16, img_resolution=16, num_attrs=2),
                      labels={"kind": "attributes", "names": ["Smiling", "Male"], "joint": JOINT})
    assert attrs.inputs[1] == {"name": "label", "dtype": "float32", "shape": ["N", 2]}
    assert ModelCard.from_json(attrs.to_json()) == attrs


JOINT = {"vectors": [[0, 0], [1, 0], [1, 1]], "weights": [0.5, 0.25, 0.25]}


@pytest.mark.parametrize("joint, needle", [
    (None, "need 'joint'"),
    ({"vectors": [[0, 0]]}, "need 'joint'"),
    ({"vectors": [[0, 2]], "weights": [1.0]}, "0/1 lists of 2"),
    ({"vectors": [[0, 0, 1]], "weights": [1.0]}, "0/1 lists of 2"),
    ({"vectors": [[0, 1], [0, 1]], "weights": [0.5, 0.5]}, "twice"),
    ({"vectors": [[0, 1], [1, 1]], "weights": [1.0]}, "2 positive numbers"),
    ({"vectors": [[0, 1], [1, 1]], "weights": [1.0, 0.0]}, "2 positive numbers"),
    ({"vectors": [[0, 1], [1, 1]], "weights": [0.5, 0.6]}, "sum to"),
], ids=["missing", "no-weights", "not-binary", "wrong-length", "duplicate", "short-weights", "zero-weight", "sum"])
def test_an_attribute_card_needs_a_valid_joint_distribution(joint, needle):
    card = ModelCard(ModelConfig(z_dim=16, img_resolution=16, num_attrs=2),
                     labels={"kind": "attributes", "names": ["Smiling", "Male"], "joint": JOINT})
    data = json.loads(card.to_json())
    data["labels"]["joint"] = joint
    with pytest.raises(ArtifactError, match=needle):
        ModelCard.from_dict(data, "generator.json")


@pytest.mark.parametrize("change, needle", [
    (lambda d: {**d, "labels": None}, "needs 'labels'"),
    (lambda d: {**d, "labels": {"kind": "class", "names": ["a", "a", "c"]}}, "3 distinct"),
    (lambda d: {**d, "labels": {"kind": "attributes", "names": ["a", "b", "c"]}}, "kind must be 'class'"),
    (lambda d: {**d, "inputs": d["inputs"][:1]}, "does not match the model config"),
    (lambda d: {**d, "precision": "int4"}, "'precision' must be one of"),
    (lambda d: {**d, "schema_version": True}, "schema_version True"),
], ids=["no-labels", "duplicate-class", "wrong-kind", "missing-label-input", "bad-precision", "bool-version"])
def test_version_2_fields_must_agree_with_the_architecture(change, needle):
    card = ModelCard(ModelConfig(z_dim=16, img_resolution=16, num_classes=3),
                     labels={"kind": "class", "names": ["a", "b", "c"]})
    with pytest.raises(ArtifactError, match=needle):
        ModelCard.from_dict(change(json.loads(card.to_json())), "generator.json")


def test_an_unconditional_card_cannot_carry_labels():
    data = _v1_card() | {"schema_version": 2, "labels": {"kind": "class", "names": ["a", "b"]}}
    with pytest.raises(ArtifactError, match="cannot have 'labels'"):
        ModelCard.from_dict(data, "generator.json")


def test_a_config_is_conditioned_on_classes_or_attributes_not_both():
    with pytest.raises(UsageError, match="not both"):
        ModelConfig(num_classes=10, num_attrs=3)
    assert default_inputs(ModelConfig()) == [{"name": "z", "dtype": "float32", "shape": ["N", 100]}]
