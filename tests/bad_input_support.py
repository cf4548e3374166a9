"""The inputs bad-input cases run on (tests/test_bad_input.py): one folder per case.

A `Workspace` makes, at most once each, what a case asks for: copies of the tiny run
and ONNX file, damaged cards, foreign or split ONNX files, fake engines, stray files;
`snapshot` records a folder so the test can tell that nothing was written.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import onnx

from dcgan_rt.model_card import METADATA_KEY
from dcgan_rt.onnx_card import IO_METADATA_KEY
from export_helpers import foreign_onnx_model, write_fake_engine


class Workspace:
    """One case's folder, and the inputs it can ask for (each made at most once)."""

    def __init__(self, root: Path, model_dir: Path, onnx_path: Path):
        self.root = root
        self._model_dir, self._onnx = model_dir, onnx_path

    @property
    def out(self) -> Path:
        return self.root / "out"

    @functools.cached_property
    def run(self) -> Path:
        """A copy of the tiny run directory (generator.safetensors + generator.json)."""
        return Path(shutil.copytree(self._model_dir, self.root / "run"))

    @functools.cached_property
    def onnx(self) -> Path:
        return Path(shutil.copy(self._onnx, self.root / "generator.onnx"))

    def file(self, name: str, data: bytes | str = b"") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def dir(self, name: str, files: dict[str, str] | None = None) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        for file, text in (files or {}).items():
            (path / file).write_text(text)
        return path

    def images(self, name: str, count: int) -> Path:
        """A folder of `count` small grayscale PNG photos (different gradients)."""
        import numpy as np
        from PIL import Image

        path = self.dir(name)
        ramp = np.linspace(0, 255, 24)
        for i in range(count):
            pixels = (np.outer(ramp, np.roll(ramp, 5 * i)) / 255).astype(np.uint8)
            Image.fromarray(pixels).save(path / f"face{i}.png")
        return path

    def run_with(self, weights: Callable[[bytes], bytes] | None = None, card: Callable[[dict], dict] | None = None,
                 raw_card: str | None = None, drop_card: bool = False) -> Path:
        """The run directory with its weights and/or generator.json damaged."""
        run = self.run
        if weights:
            w = run / "generator.safetensors"
            w.write_bytes(weights(w.read_bytes()))
        if card:
            c = run / "generator.json"
            c.write_text(json.dumps(card(json.loads(c.read_text()))))
        if raw_card is not None:
            (run / "generator.json").write_text(raw_card)
        if drop_card:
            (run / "generator.json").unlink()
        return run

    def onnx_with(self, name: str, card: Callable[[dict], dict] | None = None,
                  io: Callable[[dict], dict] | None = None, raw_card: str | None = None) -> Path:
        """The tiny ONNX with its metadata edited (the graph left as it is)."""
        model = onnx.load(str(self._onnx))
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY and card:
                prop.value = json.dumps(card(json.loads(prop.value)))
            if prop.key == METADATA_KEY and raw_card is not None:
                prop.value = raw_card
            if prop.key == IO_METADATA_KEY and io:
                prop.value = json.dumps(io(json.loads(prop.value)))
        path = self.root / name
        onnx.save(model, str(path))
        return path

    def other_network(self) -> Path:
        path = self.root / "other.onnx"
        onnx.save(foreign_onnx_model(), str(path))
        return path

    def onnx_reading_outside(self) -> Path:
        """The tiny ONNX with one weight moved to a file outside its folder (../weights.bin)."""
        from onnx.external_data_helper import convert_model_to_external_data

        model = onnx.load(str(self._onnx))
        convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin",
                                       size_threshold=256)
        folder = self.root / "model"
        folder.mkdir()
        onnx.save(model, str(folder / "generator.onnx"))  # writes model/weights.bin beside it
        shutil.move(folder / "weights.bin", self.root / "weights.bin")
        model = onnx.load(str(folder / "generator.onnx"), load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../weights.bin"
        onnx.save(model, str(folder / "generator.onnx"))
        return folder / "generator.onnx"

    def train_run(self) -> Path:
        """A run directory as far as --resume reads it first: train_config.json of a 1-channel run."""
        from dcgan_rt.train.options import TrainOptions

        run = self.dir("runs/00000-mnist-5k-16px")
        opts = TrainOptions(img_resolution=16, img_channels=1, z_dim=16, code_dim=4, g_width=8, d_width=8, steps=8)
        (run / "train_config.json").write_text(json.dumps({"options": opts.to_dict()}))
        return run

    def engine(self, plan: bytes | None = None, sidecar: Callable[[dict], dict] | None = None,
               no_sidecar: bool = False, raw_sidecar: str | None = None) -> Path:
        """A plan file with a sidecar that describes it (random bytes: no TensorRT here),
        then damaged as asked."""
        from dcgan_rt.model_card import ModelCard

        path = self.root / "generator.engine"
        write_fake_engine(path, ModelCard.load(self._model_dir / "generator.json"))
        side = path.with_name(path.name + ".json")
        if plan is not None:
            path.write_bytes(plan)
        if sidecar:
            side.write_text(json.dumps(sidecar(json.loads(side.read_text()))))
        if raw_sidecar is not None:
            side.write_text(raw_sidecar)
        if no_sidecar:
            side.unlink()
        return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root: (size, mtime_ns) of files, (-1, 0) of folders."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = (-1, 0)
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return found
