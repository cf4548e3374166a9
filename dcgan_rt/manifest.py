"""manifest.json: what an output directory of `generate` holds, and whether a run may add to it.

Core tier. The manifest names the job: the model (path, kind, sha256 of the file, sha256 of
the weights it was exported from, its model card), precision, seed, index range,
format, image shape, and for a conditional model the label rule and class names
(`labels`, dcgan_rt.labels) and the png layout; and records the runs that wrote it (backend, the file it
ran, batch size, counts, seconds). A run may resume a directory only if the job's
identity matches (same weights and precision, seed, format, latents option, and
a range that contains the old one, exactly the same one for shard formats);
anything else is refused unless --overwrite.

Sharded runs (--shard K/N, torchrun ranks) each write manifest.shard-K-of-N.json;
whichever shard finishes last merges them into the one manifest.json (see
dcgan_rt.pipeline) and removes the parts.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcgan_rt import __version__
from dcgan_rt.errors import DcganRtError
from dcgan_rt.provenance import Provenance

MANIFEST_NAME = "manifest.json"
PREVIEW_NAME = "preview.png"
KIND = "dcgan-rt/generated-images"
SCHEMA_VERSION = 1
_PART = re.compile(r"^manifest\.shard-(\d+)-of-(\d+)\.json$")


class OutputConflictError(DcganRtError):
    """The output directory holds something this run must not mix with."""


def part_name(shard: int, num_shards: int) -> str:
    return f"manifest.shard-{shard}-of-{num_shards}.json"


def is_part_name(name: str) -> bool:
    return _PART.match(name) is not None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Job:
    """The identity of a generate job: everything that decides which bytes land in DIR."""

    model_path: str
    model_kind: str
    model_sha256: str  # of the MODEL file given
    weights_sha256: str  # of the weights it was made from (== model_sha256 for safetensors)
    precision: str  # "fp32", "fp16" or "int8": what the backend computes in
    model_card: dict
    seed: int
    start: int
    count: int
    format: str
    save_latents: bool
    images_per_file: int | None  # npy / tar shard size; None for png
    image_shape: tuple[int, int, int]  # (H, W, C)
    z_dim: int
    labels: dict | None = None  # LabelRule.to_manifest(); None for an unconditional model
    layout: str = "flat"  # png: "flat" or "by-class"

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def provenance(self) -> Provenance:
        """What every image of the job says about itself (PNG text chunks, the manifest)."""
        return Provenance(model_sha256=self.weights_sha256, seed=self.seed)

    def to_manifest(self) -> dict[str, Any]:
        h, w, c = self.image_shape
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "tool_version": __version__,
            "model": {"path": self.model_path, "kind": self.model_kind, "sha256": self.model_sha256,
                      "weights_sha256": self.weights_sha256, "card": self.model_card},
            "precision": self.precision,
            "seed": self.seed,
            "start": self.start,
            "count": self.count,
            "end": self.end,
            "format": self.format,
            "images_per_file": self.images_per_file,
            "save_latents": self.save_latents,
            "image": {"height": h, "width": w, "channels": c, "dtype": "uint8"},
            "latents": {"z_dim": self.z_dim, "rule": "z(seed, index), docs/latents.md"},
            "labels": self.labels,
            "layout": self.layout,
            "provenance": self.provenance.to_manifest(),
        }


def read_manifest(path: Path) -> dict | None:
    """A manifest's JSON, None if the file is absent; refuses one that is not a manifest."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputConflictError(
            f"{path} is unreadable ({exc}); remove it or pass --overwrite to start this directory afresh"
        ) from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise OutputConflictError(
            f"{path} is not a dcgan-rt generate manifest; choose another --out or pass --overwrite"
        )
    _check_fields(data, path)
    return data


# The fields a run reads back from a manifest, and their JSON types.
_FIELDS = {"schema_version": int, "model": dict, "seed": int, "start": int, "count": int, "end": int,
           "format": str, "save_latents": bool, "image": dict, "runs": list, "complete": bool}


def _check_fields(data: dict, path: Path) -> None:
    """Validate before use: a hand-edited or damaged manifest is one clear error, not a traceback."""
    problems = [f"{key!r} should be {typ.__name__}, got {data.get(key)!r}" for key, typ in _FIELDS.items()
                if not isinstance(data.get(key), typ) or (typ is int and isinstance(data.get(key), bool))]
    if isinstance(data.get("runs"), list) and not all(isinstance(r, dict) for r in data["runs"]):
        problems.append("'runs' should list objects")
    if not (data.get("images_per_file") is None or type(data.get("images_per_file")) is int):
        problems.append(f"'images_per_file' should be an integer or null, got {data.get('images_per_file')!r}")
    shard = data.get("shard")
    if is_part_name(path.name) and not (isinstance(shard, dict) and type(shard.get("index")) is int):
        problems.append(f"'shard' should be an object with an integer index, got {shard!r}")
    if problems:
        raise OutputConflictError(
            f"{path} is damaged ({'; '.join(problems[:2])}); remove it or pass --overwrite to start this "
            "directory afresh"
        )


def existing_manifests(out_dir: Path) -> dict[str, dict]:
    """manifest.json and every shard part in out_dir, by file name."""
    found = {}
    for path in sorted(out_dir.glob("manifest*.json")):
        if path.name == MANIFEST_NAME or is_part_name(path.name):
            data = read_manifest(path)
            if data is not None:
                found[path.name] = data
    return found


def conflicts(existing: dict, job: Job) -> list[str]:
    """Why `existing` cannot be resumed by `job` (empty: it can)."""
    new = job.to_manifest()
    why = []
    old = existing.get("model", {})
    # The same weights run by another backend (run dir -> torch, its export -> ONNX
    # Runtime) make the same images to within one level, so they may share a DIR.
    if old.get("weights_sha256", old.get("sha256")) != job.weights_sha256:
        why.append(f"model {old.get('path')} (weights sha256 {str(old.get('weights_sha256'))[:12]}; this run: "
                   f"{job.model_path}, weights sha256 {job.weights_sha256[:12]})")
    for key, label in (("precision", "precision"), ("seed", "seed"), ("format", "format"),
                       ("save_latents", "--save-latents"), ("images_per_file", "shard size"),
                       ("image", "image shape"), ("labels", "labels"), ("layout", "--layout")):
        old_value = existing.get(key, _BEFORE_LABELS.get(key))  # manifests written before labels had neither
        if old_value != new[key]:
            why.append(f"{label} {_short(old_value)} (this run: {_short(new[key])})")
    old_start, old_end = existing.get("start"), existing.get("end")
    if job.format == "png":
        # PNGs stand alone, so a job may grow (e.g. -n 10000 after -n 5000), never shrink
        # (the manifest would then describe less than DIR holds).
        same = isinstance(old_start, int) and isinstance(old_end, int) and job.start <= old_start and old_end <= job.end
    else:  # shard files hold ranges clipped to the job, so the range must match exactly
        same = (old_start, old_end) == (job.start, job.end)
    if not same:
        why.append(f"another range, --start {old_start} -n {existing.get('count')} (this run: --start {job.start} "
                   f"-n {job.count}; to resume, use the same --start and -n"
                   f"{', or a larger -n' if job.format == 'png' else ''})")
    return why


_BEFORE_LABELS = {"labels": None, "layout": "flat"}


def _short(value) -> str:
    if isinstance(value, dict) and "rule" in value:  # a label rule: what differs is said in few words
        extra = value.get("class") or value.get("fixed") or value.get("labels_file_sha256", "")[:12]
        return f"{value['rule']}{f' {extra}' if extra else ''}"
    return str(value)


def merge_runs(manifests: list[dict]) -> list[dict]:
    runs = [r for m in manifests for r in m.get("runs", [])]
    return sorted(runs, key=lambda r: (r.get("started", ""), r.get("shard", "")))


def summarise_runs(runs: list[dict], key: str) -> str:
    """'onnxruntime' or 'onnxruntime, torch' when runs differed."""
    seen = []
    for r in runs:
        if r.get(key) and r[key] not in seen and r.get("generated", 0) > 0:
            seen.append(r[key])
    return ", ".join(seen) if seen else (runs[-1].get(key, "") if runs else "")
