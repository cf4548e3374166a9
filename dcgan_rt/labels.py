"""Which label image i of a conditional model gets: the label rule y(seed, i), pure and documented.

Core tier (numpy only). docs/latents.md gives the formulas beside z(S, i):

- classes, by default: y(i) = i mod K, so every K consecutive indices hold each class
  once and any job, shard or resume of a range of K * m images is exactly balanced;
- attributes, by default: a 0/1 vector drawn from the model card's joint distribution
  (the training data's own attribute vectors and their frequencies) by
  u(S, i) = (h(uint32(i) ^ h(S ^ LABEL_SALT)) >> 8) * 2^-24, a counter-based hash of the
  latents' kind (dcgan_rt.latents._hash32) on its own stream; y(i) = vectors[j], the
  first j with u < weights[0] + ... + weights[j] (float64 sums);
- `--label 7` / `--label seven`: that class for every image; `--label Smiling=1,Male=0`:
  those attributes fixed, the others drawn as above from the joint distribution
  restricted to vectors with those values;
- `--labels-file labels.csv`: one row `index,label` per image of the job.

A LabelRule is made once per job (`make_rule`), checked against the model card, and
recorded in the manifest (`to_manifest`), so a resume or another shard that asks for
other labels is refused like another seed would be.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from dcgan_rt.errors import UsageError
from dcgan_rt.latents import _hash32
from dcgan_rt.model_card import ModelCard

LABEL_SALT = np.uint32(0x4C41424C)  # "LABL": the labels' stream, apart from z's (latents._SEED_SALT)
RULES = ("balanced", "joint", "fixed", "file")


@dataclass(frozen=True)
class LabelRequest:
    """What the user asked for, typed (dcgan_rt.cli parses the text): nothing (the default
    rule), one class (`cls`: a name or an index), attribute values, or a labels file."""

    cls: str | int | None = None
    attrs: Mapping[str, int] | None = None
    file: Path | None = None

    @property
    def given(self) -> bool:
        return self.cls is not None or self.attrs is not None or self.file is not None


@dataclass(frozen=True)
class LabelRule:
    kind: str  # "class" or "attributes"
    names: tuple[str, ...]  # class names (index order) or attribute names (vector order)
    rule: str  # one of RULES
    fixed_class: int | None = None
    fixed_attrs: tuple[tuple[int, int], ...] = ()  # (attribute position, 0/1)
    vectors: np.ndarray | None = None  # (V, A) the joint distribution's vectors (attributes)
    cumulative: np.ndarray | None = None  # (V,) float64 cumulative weights
    table: dict[int, Any] | None = None  # rule "file": index -> class index or attribute row
    table_digest: str | None = None

    @property
    def num_labels(self) -> int:
        return len(self.names)

    def labels(self, seed: int, indices) -> np.ndarray:
        """y(seed, i) for each index: int64 (n,) class indices, or float32 (n, A) 0/1 vectors."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.rule == "file":
            rows = [self.table[int(i)] for i in idx]
            if self.kind == "class":
                return np.asarray(rows, dtype=np.int64).reshape(-1)
            return np.asarray(rows, dtype=np.float32).reshape(len(idx), self.num_labels)
        if self.kind == "class":
            if self.rule == "fixed":
                return np.full(len(idx), self.fixed_class, dtype=np.int64)
            return idx % self.num_labels
        u = label_uniforms(seed, idx)
        j = np.minimum(np.searchsorted(self.cumulative, u, side="right"), len(self.cumulative) - 1)
        return self.vectors[j].astype(np.float32)

    def texts(self, labels: np.ndarray) -> list[str]:
        """Labels as people read them: the class name, or "Smiling=1,Male=0"."""
        if self.kind == "class":
            return [self.names[int(y)] for y in labels]
        return [",".join(f"{n}={int(v)}" for n, v in zip(self.names, row)) for row in labels]

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "names": list(self.names), "rule": self.rule,
                               "formula": RULE_FORMULAS[(self.kind, self.rule)]}
        if self.fixed_class is not None:
            out["class"] = self.names[self.fixed_class]
        if self.fixed_attrs:
            out["fixed"] = {self.names[p]: v for p, v in self.fixed_attrs}
        if self.table_digest is not None:
            out["labels_file_sha256"] = self.table_digest
        return out


RULE_FORMULAS = {
    ("class", "balanced"): "y(i) = i mod K (docs/latents.md)",
    ("class", "fixed"): "y(i) = the class asked for",
    ("class", "file"): "y(i) from the labels file",
    ("attributes", "joint"): "y(i) = the card's joint distribution at u(seed, i) (docs/latents.md)",
    ("attributes", "fixed"): "y(i) = the attributes asked for; the others from the card's joint distribution "
                             "restricted to them, at u(seed, i) (docs/latents.md)",
    ("attributes", "file"): "y(i) from the labels file",
}


def label_uniforms(seed: int, indices: np.ndarray) -> np.ndarray:
    """u(S, i) in [0, 1), float64, exact multiples of 2^-24: the attributes' draw for image i."""
    with np.errstate(over="ignore"):
        key = _hash32(np.array([seed], dtype=np.uint32) ^ LABEL_SALT)[0]
        a = _hash32(np.asarray(indices, dtype=np.int64).astype(np.uint32) ^ key)
    return (a >> np.uint32(8)).astype(np.float64) * 2.0**-24


def make_rule(card: ModelCard, request: LabelRequest, start: int, count: int) -> LabelRule | None:
    """The job's label rule; None for an unconditional model. UsageError for a request the
    model cannot take: any label for an unconditional model, an unknown name, out of range..."""
    labels = card.labels
    if labels is None:
        if request.given:
            what = "--labels-file" if request.file is not None else "--label"
            raise UsageError(f"{what} needs a conditional model; this one is unconditional (train one with "
                             "dcgan-rt train --conditional), so drop it")
        return None
    kind, names = labels["kind"], tuple(labels["names"])
    base: dict[str, Any] = {"kind": kind, "names": names}
    if kind == "attributes":
        joint = labels["joint"]
        base["vectors"] = np.asarray(joint["vectors"], dtype=np.int64)
        base["cumulative"] = np.cumsum(np.asarray(joint["weights"], dtype=np.float64))
    if request.file is not None:
        table, digest = read_labels_file(request.file, kind, names, start, count)
        return LabelRule(rule="file", table=table, table_digest=digest, **base)
    if kind == "class":
        if request.attrs is not None:
            raise UsageError(f"--label {_show(request.attrs)} names attributes, but this model's labels are "
                             f"classes: give one of {_list(names)}")
        if request.cls is None:
            return LabelRule(rule="balanced", **base)
        return LabelRule(rule="fixed", fixed_class=class_index(request.cls, names, "--label"), **base)
    if request.cls is not None:
        raise UsageError(f"--label {request.cls} names a class, but this model's labels are attributes: give "
                         f"values like --label {names[0]}=1 (attributes: {_list(names)})")
    if request.attrs is None:
        return LabelRule(rule="joint", **base)
    for name, value in request.attrs.items():
        attribute_position(name, names)
        if value not in (0, 1):
            raise UsageError(f"--label {name}={value}: attribute values are 0 or 1")
    fixed = tuple(sorted((attribute_position(name, names), int(value)) for name, value in request.attrs.items()))
    vectors, cumulative = base["vectors"], base["cumulative"]
    weights = np.diff(cumulative, prepend=0.0)
    keep = np.all([vectors[:, p] == v for p, v in fixed], axis=0)
    if len(fixed) < len(names):
        if not keep.any():
            raise UsageError(f"no training image has {_show(request.attrs)}: give every attribute "
                             f"({', '.join(names)}) to ask for a combination the model never saw")
        vectors, weights = vectors[keep], weights[keep]
    else:
        vectors, weights = np.array([[dict(fixed)[p] for p in range(len(names))]], dtype=np.int64), np.ones(1)
    base.update(vectors=vectors, cumulative=np.cumsum(weights / weights.sum()))
    return LabelRule(rule="fixed", fixed_attrs=fixed, **base)


def class_index(value: str | int, names: tuple[str, ...], where: str) -> int:
    """A class given by name (first) or index -> its index; UsageError naming the choices."""
    if isinstance(value, str) and value in names:
        return names.index(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if 0 <= i < len(names):
            return i
        raise UsageError(f"{where} {value}: class index out of range; this model has classes 0..{len(names) - 1} "
                         f"({_list(names)})")
    raise UsageError(f"{where} {value!r}: unknown class; this model's classes are {_list(names)}")


def attribute_position(name: str, names: tuple[str, ...]) -> int:
    if name not in names:
        raise UsageError(f"--label {name}: unknown attribute; this model's attributes are {_list(names)}")
    return names.index(name)


def read_labels_file(path: Path, kind: str, names: tuple[str, ...], start: int,
                     count: int) -> tuple[dict[int, Any], str]:
    """{index: class index or attribute row} for exactly the job's indices start..start+count-1,
    and the sha256 of the parsed table. Rows `index,label` (class name or index) for classes;
    `index,<attr>,...` with a header naming the attributes (0/1 values) for attributes; the
    labels.csv that `generate` writes reads back as is."""
    path = Path(path)
    where = f"--labels-file {path}"
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{where}: cannot read it ({exc})") from None
    header = None
    if rows and not rows[0][0].strip().lstrip("-").isdigit():
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if kind == "attributes":
        if header is None or header[0] != "index" or sorted(header[1:]) != sorted(names):
            raise UsageError(f"{where}: an attribute model's labels file needs a header 'index,"
                             f"{','.join(names)}' (any attribute order), got {','.join(header or ['no header'])}")
        order = [header.index(n) for n in names]
    table: dict[int, Any] = {}
    end = start + count
    for line, row in enumerate(rows, start=2 if header else 1):
        cells = [c.strip() for c in row]
        width = 2 if kind == "class" else len(names) + 1
        if len(cells) != width:
            raise UsageError(f"{where} line {line}: expected {width} columns, got {len(cells)}")
        try:
            i = int(cells[0])
        except ValueError:
            raise UsageError(f"{where} line {line}: index {cells[0]!r} is not an integer") from None
        if not start <= i < end:
            raise UsageError(f"{where} line {line}: index {i} is outside this job's images {start}..{end - 1} "
                             "(--start and -n)")
        if i in table:
            raise UsageError(f"{where} line {line}: index {i} is listed twice")
        if kind == "class":
            table[i] = class_index(cells[1], names, f"{where} line {line}:")
        else:
            values = [cells[k] for k in order]
            if any(v not in ("0", "1") for v in values):
                raise UsageError(f"{where} line {line}: attribute values are 0 or 1, got {','.join(values)}")
            table[i] = [int(v) for v in values]
    if len(table) != count:
        missing = next(i for i in range(start, end) if i not in table)
        raise UsageError(f"{where} has {len(table)} rows for a job of {count} images (indices {start}..{end - 1}); "
                         f"index {missing} has no label: give one row per image")
    digest = hashlib.sha256(repr(sorted(table.items())).encode()).hexdigest()
    return table, digest


def _list(names) -> str:
    shown = ", ".join(names[:12])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 12 else "")


def _show(attrs: Mapping[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in attrs.items())
