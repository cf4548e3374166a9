"""A run directory's own record, train_config.json: written at the start of every
(resumed) run, read back by --resume and by tools that need the run's options or data.

This is the one artifact that keeps a folder's absolute path (model cards carry only its
name and digest).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dcgan_rt import __version__
from dcgan_rt.atomic import write_json
from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.train.data import TrainData
from dcgan_rt.train.distributed import SINGLE, World
from dcgan_rt.train.options import RESUMABLE_OVERRIDES, TrainOptions

CONFIG_FILE = "train_config.json"


def read_train_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DcganRtError(f"{run_dir} has no {CONFIG_FILE}: pass a run directory made by dcgan-rt train") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DcganRtError(f"cannot read {path} ({exc})") from None


def resume_options(run_dir: Path, overrides: dict[str, Any]) -> TrainOptions:
    """The run's recorded options with the allowed overrides (epochs/steps/device/sync_bn) applied.
    Any other option given with --resume must equal the recorded one."""
    recorded = TrainOptions.from_dict(read_train_config(run_dir).get("options", {}))
    changes = {}
    for key, value in overrides.items():
        if value is None or getattr(recorded, key) == value:
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise UsageError(f"--{key.replace('_', '-')} {value} differs from the run being resumed "
                             f"({getattr(recorded, key)}); --resume continues a run as configured "
                             "(only --epochs, --steps, --kimg, --device, --sync-bn, --lr-g, --lr-d and --snapshot-kimg may change)")
        changes[key] = value
    for length in ("epochs", "steps", "kimg"):  # a new length replaces the recorded one
        if length in changes:
            for other in ("epochs", "steps", "kimg"):
                changes.setdefault(other, None)
    return recorded.replace(**changes)


def write_run_config(run_dir: Path, opts: TrainOptions, data: TrainData, device: torch.device,
                     spe: int, resumed_from_step: int | None = None, world: World = SINGLE) -> None:
    """train_config.json: the options, the data set (its full path stays here only), the
    length, the machine, and every resume."""
    path = run_dir / CONFIG_FILE
    previous = json.loads(path.read_text()) if path.is_file() else {}
    resumes = previous.get("resumes", [])
    if resumed_from_step is not None:
        resumes.append({"step": resumed_from_step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "world_size": world.world_size})
    write_json(path, {
        "options": opts.to_dict(),
        "model_config": opts.model_config.to_dict(),
        "dataset": {"name": data.name, "num_images": data.num_images, "skipped": len(data.skipped),
                    # the folder's absolute path stays here, in the maker's own run directory; cards carry name + digest
                    **({"path": str(data.path), "digest": data.digest} if data.path is not None else {})},
        "steps_per_epoch": spe,
        "total_steps": opts.total_steps(spe),
        "device": str(device),
        "world_size": world.world_size,  # processes (torchrun); each trains on batch_size / world_size
        "tool_version": __version__,
        "torch_version": torch.__version__,
        "created": previous.get("created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "command": previous.get("command", sys.argv),
        "resumes": resumes,
    })
