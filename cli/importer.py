"""`dcgan-rt import CHECKPOINT --out DIR`: a pytorch/examples dcgan generator as a dcgan-rt model.

CLI tier: calls dcgan_rt.train.pytorch_examples (torch imported inside the command)
and says what it read and wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcgan_rt.cli.common import console, handle_errors


@handle_errors
def import_model(
    checkpoint: Annotated[Path, typer.Argument(help="Generator state dict from pytorch/examples' dcgan/main.py "
                                                    "(netG_epoch_N.pth).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for generator.safetensors + generator.json "
                                                          "(new, or without them).", show_default=False)],
    dataset: Annotated[str, typer.Option(help="Name of the data set it was trained on, for the model card "
                                              "(e.g. celeba).")] = "unknown",
) -> None:
    """Import a generator trained by pytorch/examples' dcgan/main.py (sizes read from its tensors)."""
    from dcgan_rt.api import import_generator
    from dcgan_rt.model_card import ModelCard

    weights = import_generator(checkpoint, out, dataset=dataset)

    cfg = ModelCard.load(weights.with_suffix(".json")).model_config
    console.print(f"imported {checkpoint.name}: nz={cfg.z_dim}, ngf={cfg.g_width}, nc={cfg.img_channels}, "
                  f"{cfg.img_resolution}x{cfg.img_resolution} px", highlight=False, soft_wrap=True, markup=False)
    console.print(f"wrote {weights} and {weights.with_suffix('.json').name}; next: dcgan-rt export {out}",
                  highlight=False, soft_wrap=True, markup=False)
