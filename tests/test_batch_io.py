"""The I/O contract lists every input, old single-input files still run, and backends take Batches."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import run_cli

from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend
from dcgan_rt.batch import Batch
from dcgan_rt.errors import ArtifactError, UsageError
from dcgan_rt.latents import latents
from dcgan_rt.model_card import METADATA_KEY
from dcgan_rt.onnx_card import IO_METADATA_KEY, read_onnx

V2_ONLY = ("inputs", "labels", "precision", "calibration", "dataset_digest")


def _rewrite_metadata(src, dst, edit) -> None:
    model = onnx.load(str(src))
    meta = {p.key: json.loads(p.value) if p.key.startswith("dcgan_rt.") else p.value for p in model.metadata_props}
    edit(meta)
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(model, str(dst))


def as_version_1(meta: dict) -> None:
    """What `dcgan-rt export` wrote before labels: a schema-1 card and an io with `input` only."""
    card = meta[METADATA_KEY]
    for key in V2_ONLY:
        card.pop(key, None)
    card["schema_version"] = 1
    meta[IO_METADATA_KEY].pop("inputs")


def test_contract_lists_every_input_as_the_card_does(tiny_onnx):
    art = read_onnx(tiny_onnx)
    assert art.io["inputs"] == art.card.inputs == [{"name": "z", "dtype": "float32", "shape": ["N", 16]}]
    assert art.io["input"] == art.io["inputs"][0]  # kept for apps written against the single-input contract


def test_version_1_onnx_file_generates_the_same_pixels(tiny_onnx, tmp_path):
    old = tmp_path / "old.onnx"
    _rewrite_metadata(tiny_onnx, old, as_version_1)
    raw = {p.key: p.value for p in onnx.load(str(old)).metadata_props}
    assert json.loads(raw[METADATA_KEY])["schema_version"] == 1 and "inputs" not in json.loads(raw[IO_METADATA_KEY])

    for model, out in ((tiny_onnx, tmp_path / "new"), (old, tmp_path / "old")):
        run_cli("generate", model, "-n", "40", "--out", out, "--format", "npy", "--batch-size", "16", check=True)
    assert np.array_equal(np.load(tmp_path / "old" / "images-000000.npy"),
                          np.load(tmp_path / "new" / "images-000000.npy"))
    info = run_cli("info", old, "--json", check=True)
    assert json.loads(info.stdout)["io"]["inputs"][0]["name"] == "z"


def test_a_graph_input_the_contract_does_not_list_is_refused(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    model.graph.input.append(onnx.helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"]))
    path = tmp_path / "extra_input.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ArtifactError, match=r"graph inputs are \['z', 'label'\], the contract promises \['z'\]"):
        read_onnx(path)


def test_backend_runs_batches_and_refuses_labels_for_an_unconditional_model(tiny_onnx):
    z = latents(5, np.arange(10, 19), 16)
    with OnnxRuntimeBackend(tiny_onnx) as backend:
        batch = Batch(np.arange(10, 19), z)
        assert np.array_equal(backend.images(batch), backend.images(z))  # a bare z is an unlabelled batch
        assert [len(b) for b in batch.split(4)] == [3, 2, 2, 2]
        with pytest.raises(UsageError, match="unconditional: it takes no labels"):
            backend(Batch(batch.indices, z, np.zeros(9, dtype=np.int64)))
