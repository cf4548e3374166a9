"""Labels for conditional training: which labels a data set has, checked before a run starts.

Training tier (torch). A conditional run trains on
- class labels: the digits of mnist-5k / mnist ("0".."9"), the person of an ORL photo
  ("s1".."s40"), or the first-level subfolder of a folder in torchvision's ImageFolder
  layout (the subfolder names, sorted, are the class names and class indices);
- attribute labels: CelebA's 0/1 attributes named by --attrs, in that order.
`resolve_labels` turns (data, options) into a LabelSpec (kind, names, the attribute
joint distribution for the model card) and one label per training image, or one
clear UsageError, before any run directory exists.

Labels G is trained with: the labels of the real batch (so fakes follow the data's own
class balance and attribute joint distribution and use no extra random numbers, which
keeps --resume exact).
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from dcgan_rt.errors import UsageError

DIGIT_NAMES = tuple(str(d) for d in range(10))
CELEBA_HINT = "e.g. --attrs Smiling,Male,Eyeglasses"


@dataclass(frozen=True)
class ClassFolders:
    """Class labels read from a folder's first-level subfolders (ImageFolder layout)."""

    labels: torch.Tensor | None  # (N,) int64 class indices, None when the layout has no classes
    names: list[str] | None
    problem: str | None  # why the folder has no class labels, for the error message


def folder_classes(files: Sequence[Path], folder: Path) -> ClassFolders:
    """Each file's first-level subfolder under `folder` as its class (sorted names = indices)."""
    parts = [Path(f).relative_to(folder).parts for f in files]
    loose = [p for p in parts if len(p) < 2]
    if loose:
        return ClassFolders(None, None, f"{len(loose)} of its {len(parts)} images lie directly in it "
                            f"(first: {loose[0][0]}), not in a class subfolder")
    names = sorted({p[0] for p in parts})
    if len(names) < 2:
        return ClassFolders(None, None, f"all its images are in one subfolder ({names[0]}), one class")
    index = {n: i for i, n in enumerate(names)}
    return ClassFolders(torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), names, None)


@dataclass(frozen=True)
class LabelSpec:
    """What a conditional model is conditioned on."""

    kind: str  # "class" or "attributes"
    names: tuple[str, ...]
    joint: dict[str, Any] | None = None  # attributes: {"vectors": [[0/1]*A], "weights": [p]}

    @property
    def num_classes(self) -> int:
        return len(self.names) if self.kind == "class" else 0

    @property
    def num_attrs(self) -> int:
        return len(self.names) if self.kind == "attributes" else 0

    def card_labels(self) -> dict[str, Any]:
        """The model card's `labels` (dcgan_rt.model_card)."""
        out: dict[str, Any] = {"kind": self.kind, "names": list(self.names)}
        if self.joint is not None:
            out["joint"] = self.joint
        return out


def joint_distribution(vectors: torch.Tensor) -> dict[str, Any]:
    """(N, A) 0/1 -> the distinct vectors, most frequent first (ties: in 0/1 order), and
    their frequencies."""
    counts = Counter(tuple(int(b) for b in row) for row in vectors.to(torch.int64).tolist())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = vectors.shape[0]
    return {"vectors": [list(v) for v, _ in ordered], "weights": [c / total for _, c in ordered]}


def resolve_labels(data: Any, opts: Any) -> tuple[LabelSpec, torch.Tensor]:
    """(TrainData, TrainOptions with conditional on) -> (LabelSpec, labels): int64 (N,) class
    indices or float32 (N, A) attribute vectors, one per image of data.images."""
    if opts.attrs is not None:
        return _attribute_labels(data, opts.attr_list)
    if data.attrs is not None and data.labels is None:
        raise UsageError(f"--conditional on {data.name} trains on its attributes: name them with --attrs "
                         f"({CELEBA_HINT})")
    if data.labels is None or not data.class_names:
        why = f": {data.label_problem}" if getattr(data, "label_problem", None) else ""
        raise UsageError(f"--data {data.name} has no labels for --conditional{why}; use mnist-5k, mnist, orl, "
                         "celeba with --attrs, or a folder with one subfolder of images per class")
    return LabelSpec("class", tuple(data.class_names)), data.labels.to(torch.int64)


def _attribute_labels(data: Any, wanted: list[str]) -> tuple[LabelSpec, torch.Tensor]:
    if data.attrs is None or not data.attr_names:
        raise UsageError(f"--attrs needs CelebA's attribute file (list_attr_celeba.txt beside img_align_celeba), "
                         f"and --data {data.name} has none: drop --attrs, or train on --data celeba")
    names = list(data.attr_names)
    for name in wanted:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"CelebA has no attribute {name!r}: {hint}its 40 are {', '.join(names)}")
    if len(set(wanted)) != len(wanted):
        raise UsageError(f"--attrs names an attribute twice ({','.join(wanted)}): name each once")
    vectors = data.attrs[:, [names.index(n) for n in wanted]]
    return LabelSpec("attributes", tuple(wanted), joint_distribution(vectors)), vectors.float()


def grid_labels(spec: LabelSpec, cols: int) -> tuple[torch.Tensor, int]:
    """Labels of a sample grid with `cols` columns: one row per class (classes), or one row
    per common attribute vector, the most frequent first (at most `cols` rows). Returns
    (labels for rows x cols images, row by row; the number of rows)."""
    if spec.kind == "class":
        rows = spec.num_classes
        return torch.arange(rows).repeat_interleave(cols), rows
    vectors = torch.tensor(spec.joint["vectors"][:cols], dtype=torch.float32)
    return vectors.repeat_interleave(cols, dim=0), vectors.shape[0]


def calibration_labels(spec: LabelSpec, count: int, seed: int) -> torch.Tensor:
    """Labels for measuring BatchNorm statistics: every class in turn, or attribute vectors
    drawn from the joint distribution with a fixed generator (a pure function of the seed)."""
    if spec.kind == "class":
        return torch.arange(count) % spec.num_classes
    weights = torch.tensor(spec.joint["weights"], dtype=torch.float64)
    rows = torch.multinomial(weights, count, replacement=True, generator=torch.Generator().manual_seed(seed))
    return torch.tensor(spec.joint["vectors"], dtype=torch.float32)[rows]


def index_labels(spec: LabelSpec, start: int, count: int, seed: int) -> torch.Tensor:
    """Labels of images start..start+count-1: class i mod K (every K consecutive images hold
    each class once); attribute vectors drawn from the joint distribution by a generator
    seeded with (seed, start)."""
    if spec.kind == "class":
        return (torch.arange(start, start + count) % spec.num_classes).to(torch.int64)
    return calibration_labels(spec, count, (seed * 1_000_003 + start) % 2**63)
