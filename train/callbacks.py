"""The training loop's hook API: `TrainState`, what callbacks see, and `Callback`.

Training tier (torch). Progress display, --eval-every and benchmarks plug into
`dcgan_rt.train.loop.train_run` as Callbacks; the loop fills TrainState as it goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from dcgan_rt.train.conditional import LabelSpec
from dcgan_rt.train.networks import Generator
from dcgan_rt.train.options import TrainOptions


@dataclass
class TrainState:
    """What callbacks see. Counters are totals over the whole run, resumes included."""

    run_dir: Path
    opts: TrainOptions
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # steps done in the current epoch
    cur_nimg: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # latest logged averages
    images_per_s: float = 0.0
    generator: Generator | None = None  # the module used for samples and export (EMA when on)
    label_spec: LabelSpec | None = None  # what a conditional generator takes beside z

    @property
    def total_epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)


class Callback:
    """Hooks into the loop; override what you need (dcgan-rt evaluate adds --eval-every here)."""

    def on_start(self, state: TrainState) -> None: ...

    def on_log(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def wants_snapshot(self, state: TrainState) -> bool:
        """True to have this epoch end save a sample grid, checkpoint and generator (and set
        state.generator) even if --snapshot-kimg would skip it."""
        return False

    def on_end(self, state: TrainState) -> None: ...

    def message(self, text: str) -> None:
        """Warnings and notices from the loop."""

