"""checkpoint.pt: everything needed to continue a run exactly, as tensors and plain data.

Training tier (torch). The file holds the generator, its EMA, the discriminator, both
optimizers (and the AMP grad scaler), the step / epoch / images counters and the RNG
states as uint8 tensors, so `torch.load(path, weights_only=True)` reads it: no pickled
code. It is written to a temporary name and renamed, so a crash never leaves half a
checkpoint and the previous one stays valid until the new one is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dcgan_rt.atomic import atomic_path
from dcgan_rt.errors import ArtifactError, DcganRtError
from dcgan_rt.safe_load import load_tensors

FORMAT = "dcgan-rt/checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / FILENAME
    # Temp files of a run that was killed while saving (this process has none open between saves).
    for stale in [*Path(run_dir).glob(".*.tmp"), *Path(run_dir).glob("*/.*.tmp")]:
        stale.unlink(missing_ok=True)
    try:
        with atomic_path(path) as tmp:
            torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    except (OSError, RuntimeError) as exc:  # a full disk: torch's zip writer raises RuntimeError on short writes
        reason = getattr(exc, "strerror", None) or "the write was cut short: disk full?"
        kept = "the previous checkpoint is kept" if path.is_file() else "no checkpoint had been written yet"
        raise DcganRtError(f"cannot write {path} ({reason}); {kept}: free some space, then continue with "
                           f"dcgan-rt train --resume {run_dir}") from exc
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        raise ArtifactError(f"{run_dir} has no {FILENAME}: pass a run directory that 'dcgan-rt train' has "
                            "checkpointed (it writes one after every epoch)")
    state = load_tensors(path, "checkpoint")  # torch.load(weights_only=True): a planted pickle is refused
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a dcgan-rt checkpoint")
    if state.get("version") != VERSION:
        raise ArtifactError(f"{path} is checkpoint version {state.get('version')}; this dcgan-rt reads {VERSION}")
    return state


def rng_state(noise: torch.Generator) -> dict[str, torch.Tensor]:
    """The RNG states a resumed run needs, as uint8 tensors (weights_only-safe)."""
    state = {"torch": torch.get_rng_state(), "noise": noise.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor], noise: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    noise.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
