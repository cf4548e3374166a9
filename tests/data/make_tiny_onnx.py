"""Make tests/data/tiny_generator.onnx: a few-KB generator the runtime-install test runs.

Run from the repository root with [train] installed:  python tests/data/make_tiny_onnx.py

A 16x16 gray generator (z_dim 8, g_width 4) with seeded random weights and BatchNorm
statistics from a few training-mode passes, saved as a release and exported by the
real `dcgan-rt export` code, so the file carries the model card and I/O contract any
export does. The test installs dcgan-rt[cpu] without torch and generates from it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from dcgan_rt.config import ModelConfig
from dcgan_rt.export.exporter import export_model
from dcgan_rt.model_card import ModelCard
from dcgan_rt.train.networks import build_generator
from dcgan_rt.train.release import save_generator

OUT = Path(__file__).resolve().parent / "tiny_generator.onnx"


def main() -> None:
    cfg = ModelConfig(z_dim=8, img_resolution=16, img_channels=1, g_width=4, d_width=4)
    torch.manual_seed(0)
    generator = build_generator(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            generator(torch.randn(32, cfg.z_dim))
    with tempfile.TemporaryDirectory() as tmp:
        save_generator(generator.eval(), ModelCard(cfg, dataset="tiny-fixture"), tmp)
        export_model(tmp, engine=False)
        shutil.copyfile(Path(tmp) / "export" / "generator.onnx", OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
