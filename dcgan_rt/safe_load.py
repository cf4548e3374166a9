"""Opening files someone handed you without running code hidden in them.

Core tier: standard library at import; torch and onnx are imported inside the
function that needs them.

- PyTorch files (.pt checkpoints): `load_tensors` is `torch.load(weights_only=True)`
  and nothing else. Its unpickler builds tensors, dicts, lists, numbers and strings
  only; a pickle that asks for any other callable (the way a malicious file runs
  `os.system`) is refused before that callable is touched.
- ONNX external data: a tensor stored outside the .onnx file must live in the model's
  own folder. `check_onnx_file` refuses absolute paths, `..` and symlinks that lead
  out, before ONNX Runtime, OpenVINO or TensorRT open the file (older runtimes do not
  check this themselves, and a model that reads /etc/shadow into a weight would
  leak it through its images).
- TensorRT plans are checked against their sidecar's sha256 before they are
  deserialised (dcgan_rt.engine_sidecar.load_engine), and every JSON document is
  validated against its schema before use (ModelCard.from_dict, EngineSidecar.from_dict).
"""

from __future__ import annotations

import mmap
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

from dcgan_rt.errors import ArtifactError


class UnsafeFileError(ArtifactError):
    """A file that would run code, or read files it has no business reading, if loaded."""


def load_tensors(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """torch.load(path, weights_only=True) on the CPU, with dcgan-rt's errors."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes about pickle protocols are not for users
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnsafeFileError(
            f"{path} holds pickled Python objects besides tensors; dcgan-rt refused to load it, because "
            f"unpickling them could run code. Use a {what} written by dcgan-rt, or re-save its tensors "
            "with safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path} is not a readable {what} (truncated or damaged: {first})") from None


def check_onnx_file(path: str | os.PathLike) -> None:
    """Refuse an ONNX file whose external-data references leave its folder."""
    path = Path(path)
    if not _mentions_external_data(path):
        return
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        from dcgan_rt.errors import MissingDependencyError

        raise MissingDependencyError("onnx", "checking an ONNX model's external data") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError):
        return  # not ONNX at all: the loader that comes next says so in its own words
    check_external_data(model, path)


def check_external_data(model, path: str | os.PathLike) -> None:
    """`model` (an onnx.ModelProto, loaded without its external data) came from `path`:
    every tensor stored outside it must be a file inside path's folder."""
    folder = Path(path).resolve().parent
    for tensor in _tensors(model):
        if tensor.data_location != 1:  # onnx.TensorProto.EXTERNAL
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise UnsafeFileError(
                f"{path}: tensor {tensor.name!r} reads its data from {location!r}, outside the model's folder "
                f"{folder}; dcgan-rt refuses such models. Re-export it with dcgan-rt export (one self-contained file)"
            )


def _mentions_external_data(path: Path) -> bool:
    """A cheap pre-check: an external-data entry always contains the key 'location'."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return False
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(b"location") != -1
    except (OSError, ValueError):
        return False  # missing or unreadable: the loader reports it


def _tensors(model) -> Iterator[Any]:
    """Every TensorProto in a model: initializers, sparse ones, Constant/attribute
    tensors, in subgraphs (If/Loop/Scan) and local functions too."""
    def graph_tensors(graph) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from node_tensors(graph.node)

    def node_tensors(nodes) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                if attr.HasField("g"):
                    yield from graph_tensors(attr.g)
                for g in attr.graphs:
                    yield from graph_tensors(g)

    yield from graph_tensors(model.graph)
    for function in model.functions:
        yield from node_tensors(function.node)
