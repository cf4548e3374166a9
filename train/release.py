"""The release artifact: generator.safetensors + generator.json, and loading it back.

Training tier (torch). Weights are tensors only (safetensors), never pickled code;
the model card beside them says how to rebuild the module.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dcgan_rt.atomic import atomic_path
from dcgan_rt.errors import ArtifactError
from dcgan_rt.model_card import ModelCard
from dcgan_rt.model_path import resolve_model
from dcgan_rt.train.networks import Generator, build_generator


def save_generator(generator: Generator, card: ModelCard, out_dir: str | Path) -> Path:
    """Write generator.safetensors and generator.json atomically; returns the weights path."""
    out_dir = Path(out_dir)
    weights = out_dir / "generator.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": "dcgan-rt/generator"})
    card.save(out_dir / "generator.json")
    return weights


def load_generator(model: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, ModelCard]:
    """Load a run directory or generator.safetensors into an eval-mode Generator."""
    resolved = resolve_model(model)
    if resolved.kind != "safetensors":
        raise ArtifactError(
            f"{resolved.path} is an {resolved.kind} file; PyTorch needs a run directory or generator.safetensors"
        )
    card = ModelCard.load(resolved.card_path)
    try:
        state = load_file(str(resolved.path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{resolved.path} is not a readable safetensors file ({exc}); re-export or retrain") from None
    generator = build_generator(card.model_config, init=False)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()]
        first = lines[1] if len(lines) > 1 else lines[0]  # line 0 is only "Error(s) in loading state_dict..."
        raise ArtifactError(
            f"{resolved.path} does not match the architecture in {resolved.card_path.name} ({first}): "
            "keep the generator.json that was written with these weights"
        ) from None
    return generator.to(device).eval(), card
