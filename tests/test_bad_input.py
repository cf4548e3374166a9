"""Bad input through the real CLI: the right exit code, one clear message, nothing written.

Each case runs `dcgan-rt` in a subprocess (conftest.run_cli) from a folder of its own
that holds its inputs (copies of the tiny model, damaged files) and its output path.
Every case checks what a user would see and find:

- exit code 2 for bad usage, 1 for a failure the message explains;
- no traceback (that needs --debug), and exactly one error message that names the
  problem, and the fix where there is one;
- the folder holds exactly what it held before: no output directory, no partial file,
  no export/ folder beside the model. The one exception is generate's advisory lock
  files (.dcgan-rt*.lock) in an output directory that already existed.

The cases are independent processes, so a module fixture runs them all at once on a
small thread pool and each test reads its own outcome. docs/errors.md lists them
with their messages (`python tests/test_bad_input.py` prints that table).
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from bad_input_support import Workspace, snapshot
from conftest import run_cli

LOCK_FILES = {".dcgan-rt.lock", ".dcgan-rt.merge.lock"}
PARALLEL = 4  # processes at a time: most cases exit before torch or onnxruntime is imported


def _set(d: dict, path: str, value) -> dict:
    """d with d[a][b]... = value for path 'a.b...'."""
    keys = path.split(".")
    target = d
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value
    return d


@dataclass(frozen=True)
class Case:
    id: str
    code: int
    needles: tuple[str, ...]
    argv: Callable[[Workspace], list]


def C(id: str, code: int, needles: str | tuple[str, ...], argv: Callable[[Workspace], list]) -> Case:
    return Case(id, code, (needles,) if isinstance(needles, str) else needles, argv)


def _gen(model: Callable[[Workspace], Path], *extra) -> Callable[[Workspace], list]:
    return lambda w: ["generate", model(w), "-n", "8", "--out", w.out, *extra]


ONNX = lambda w: w.onnx  # noqa: E731

CASES = [
    # -- generate: options -----------------------------------------------------------------------------------
    C("generate/n-not-an-integer", 2, ("invalid value", "--num"),
      lambda w: ["generate", w.onnx, "-n", "many", "--out", w.out]),
    C("generate/n-missing", 2, ("missing option", "--num"), lambda w: ["generate", w.onnx, "--out", w.out]),
    C("generate/n-zero", 2, "-n must be an integer >= 1", lambda w: ["generate", w.onnx, "-n", "0", "--out", w.out]),
    C("generate/seed-negative", 2, "--seed must be", _gen(ONNX, "--seed", "-1")),
    C("generate/seed-above-2^32", 2, "--seed must be at most 4294967295", _gen(ONNX, "--seed", str(2**32))),
    C("generate/start-negative", 2, "--start must be", _gen(ONNX, "--start", "-3")),
    C("generate/indices-past-2^32", 2, "below 2^32", _gen(ONNX, "--start", str(2**32 - 4))),
    C("generate/batch-size-word", 2, "--batch-size must be 'auto' or a positive integer",
      _gen(ONNX, "--batch-size", "big")),
    C("generate/format-unknown", 2, ("unknown --format 'gif'", "png, npy, tar"), _gen(ONNX, "--format", "gif")),
    C("generate/shard-out-of-range", 2, ("--shard 4/4", "below N"), _gen(ONNX, "--shard", "4/4")),
    C("generate/backend-unknown", 2, ("unknown backend 'cuda'", "choose one of"), _gen(ONNX, "--backend", "cuda")),
    C("generate/backend-torch-for-onnx", 2, ("--backend torch needs a run directory",),
      _gen(ONNX, "--backend", "torch")),
    # -- generate: the model ---------------------------------------------------------------------------------
    C("generate/model-missing", 1, ("not found", "pass a run directory"), _gen(lambda w: w.root / "nope.onnx")),
    C("generate/model-unknown-suffix", 1, "unknown model file type .txt", _gen(lambda w: w.file("notes.txt", "hi"))),
    C("generate/model-dir-without-weights", 1, "without generator.safetensors", _gen(lambda w: w.dir("empty"))),
    C("generate/onnx-random-bytes", 1, ("cannot load", "re-export"),
      _gen(lambda w: w.file("r.onnx", os.urandom(4096)))),
    C("generate/onnx-of-another-network", 1, ("not a dcgan-rt generator", "dcgan-rt export"),
      _gen(lambda w: w.other_network())),
    C("generate/onnx-card-unknown-key", 1, ("unknown keys ['surprise']", "re-export"),
      _gen(lambda w: w.onnx_with("k.onnx", card=lambda c: {**c, "surprise": 1}))),
    C("generate/onnx-card-wrong-type", 1, ("'z_dim' must be an integer, got '16'", "re-export"),
      _gen(lambda w: w.onnx_with("t.onnx", card=lambda c: _set(c, "model_config.z_dim", "16")))),
    C("generate/onnx-card-not-json", 1, "model card is not valid JSON",
      _gen(lambda w: w.onnx_with("j.onnx", raw_card="{oops"))),
    C("generate/onnx-wrong-channel-count", 1, ("[N, 1, 16, 16]", "metadata promises", "[N, 3, 16, 16]"),
      _gen(lambda w: w.onnx_with("c.onnx", card=lambda c: _set(c, "model_config.img_channels", 3),
                                 io=lambda io: _set(io, "output.shape", ["N", 3, 16, 16])))),
    C("generate/onnx-external-data-outside-folder", 1, ("outside the model's folder", "re-export"),
      _gen(lambda w: w.onnx_reading_outside())),
    C("generate/safetensors-truncated", 1, ("is truncated", "re-export or retrain"),
      _gen(lambda w: w.run_with(weights=lambda b: b[: len(b) // 2]))),
    C("generate/card-missing", 1, ("generator.json", "beside it"), _gen(lambda w: w.run_with(drop_card=True))),
    C("generate/card-wrong-type", 1, "'z_dim' must be an integer",
      _gen(lambda w: w.run_with(card=lambda c: _set(c, "model_config.z_dim", 16.5)))),
    C("generate/card-of-other-architecture", 1, ("does not match the architecture", "size mismatch"),
      _gen(lambda w: w.run_with(card=lambda c: _set(c, "model_config.g_width", 16)))),
    C("generate/engine-without-sidecar", 1, ("no sidecar", "rebuild with dcgan-rt export"),
      _gen(lambda w: w.engine(no_sidecar=True))),
    C("generate/engine-sidecar-of-something-else", 1, ("not a dcgan-rt engine sidecar", "rebuild"),
      _gen(lambda w: w.engine(sidecar=lambda s: {**s, "format": "someone-else"}))),
    # -- generate: the output directory ----------------------------------------------------------------------
    C("generate/out-is-a-file", 1, "is a file, not a directory", lambda w: ["generate", w.onnx, "-n", "8", "--out",
                                                                             w.file("out", "x")]),
    C("generate/out-under-a-file", 1, "cannot create --out",
      lambda w: ["generate", w.onnx, "-n", "8", "--out", w.file("f", "x") / "out"]),
    C("generate/out-unwritable", 1, ("cannot create --out", "choose a writable directory"),
      lambda w: ["generate", w.onnx, "-n", "8", "--out", "/proc/dcgan-rt-out"]),
    C("generate/out-not-empty", 1, ("not empty", "--overwrite"),
      lambda w: ["generate", w.onnx, "-n", "8", "--out", w.dir("out", {"holiday.jpg": "photo"})]),
    C("generate/out-holds-another-job", 1, ("another job's images", "seed 1", "--overwrite"),
      lambda w: ["generate", w.onnx, "-n", "8", "--out", _other_job(w)]),
    C("generate/out-manifest-corrupt", 1, ("unreadable", "--overwrite"),
      lambda w: ["generate", w.onnx, "-n", "8", "--out", w.dir("out", {"manifest.json": "{half a manifest"})]),
    # -- export ----------------------------------------------------------------------------------------------
    C("export/model-missing", 1, "not found", lambda w: ["export", w.root / "nowhere"]),
    C("export/onnx-instead-of-weights", 1, "export needs the trained weights", lambda w: ["export", w.onnx]),
    C("export/safetensors-truncated", 1, ("truncated", "re-export or retrain"),
      lambda w: ["export", w.run_with(weights=lambda b: b[:200])]),
    C("export/card-unknown-key", 1, ("unknown keys ['notes']", "re-export"),
      lambda w: ["export", w.run_with(card=lambda c: {**c, "notes": "mine"})]),
    C("export/card-not-json", 1, "not valid JSON",
      lambda w: ["export", w.run_with(raw_card='{"format": "dcgan-rt/generator",')]),
    C("export/card-of-other-architecture", 1, ("does not match the architecture", "size mismatch"),
      lambda w: ["export", w.run_with(card=lambda c: _set(c, "model_config.z_dim", 32)), "--out", w.out]),
    C("export/opset-too-old", 2, ("--opset must be between 17",), lambda w: ["export", w.run, "--opset", "9"]),
    C("export/max-batch-zero", 2, "--max-batch must be between 1", lambda w: ["export", w.run, "--max-batch", "0"]),
    C("export/max-batch-without-engine", 2, ("--max-batch", "--no-engine"),
      lambda w: ["export", w.run, "--no-engine", "--max-batch", "8"]),
    C("export/out-is-a-file", 2, "is a file", lambda w: ["export", w.run, "--no-engine", "--out", w.file("out", "x")]),
    # -- sample and interpolate ------------------------------------------------------------------------------
    C("sample/grid-zero", 2, "--grid must look like COLSxROWS", lambda w: ["sample", w.onnx, "--out", w.root / "g.png",
                                                                            "--grid", "0x4"]),
    C("sample/out-unknown-type", 2, ("unknown image type .xyz", "use .png"),
      lambda w: ["sample", w.onnx, "--out", w.root / "g.xyz"]),
    C("sample/out-folder-missing", 2, ("does not exist", "create the folder"),
      lambda w: ["sample", w.onnx, "--out", w.root / "nowhere" / "g.png"]),
    C("sample/out-is-a-directory", 2, "is a directory", lambda w: ["sample", w.onnx, "--out", w.dir("g.png")]),
    C("sample/scale-zero", 2, "--scale must be between 1 and 16",
      lambda w: ["sample", w.onnx, "--out", w.root / "g.png", "--scale", "0"]),
    C("interpolate/one-seed", 2, "at least two seeds", lambda w: ["interpolate", w.onnx, "--out", w.root / "w.gif",
                                                                  "--seeds", "7"]),
    C("interpolate/seeds-not-numbers", 2, "comma-separated integers",
      lambda w: ["interpolate", w.onnx, "--out", w.root / "w.gif", "--seeds", "cat,dog"]),
    C("interpolate/frames-zero", 2, "--frames must be a positive integer",
      lambda w: ["interpolate", w.onnx, "--out", w.root / "w.gif", "--frames", "0"]),
    C("interpolate/out-not-gif", 2, "must end in .gif", lambda w: ["interpolate", w.onnx, "--out", w.root / "w.png"]),
    # -- info ------------------------------------------------------------------------------------------------
    C("info/onnx-random-bytes", 1, ("not a readable ONNX file", "re-export"),
      lambda w: ["info", w.file("r.onnx", os.urandom(4096))]),
    C("info/onnx-wrong-channel-count", 1, ("graph output 'images'", "contract promises"),
      lambda w: ["info", w.onnx_with("c.onnx", card=lambda c: _set(c, "model_config.img_channels", 3),
                                     io=lambda io: _set(io, "output.shape", ["N", 3, 16, 16]))]),
    C("info/onnx-external-data-outside-folder", 1, "outside the model's folder",
      lambda w: ["info", w.onnx_reading_outside()]),
    C("info/engine-plan-replaced", 1, ("does not match its sidecar", "rebuild with dcgan-rt export"),
      lambda w: ["info", w.engine(plan=b"not the plan the sidecar describes")]),
    C("info/engine-sidecar-not-json", 1, ("not valid JSON", "rebuild"), lambda w: ["info", w.engine(raw_sidecar="{")]),
    C("info/engine-sidecar-wrong-types", 1, ("has a field of the wrong type", "rebuild"),
      lambda w: ["info", w.engine(sidecar=lambda s: {**s, "batch_profile": "1..64"})]),
    C("info/engine-sidecar-card-wrong-type", 1, ("'training_step' must be int", "re-export"),
      lambda w: ["info", w.engine(sidecar=lambda s: _set(s, "model_card.training_step", "ten"))]),
    # -- bench -----------------------------------------------------------------------------------------------
    C("bench/backend-unknown", 2, ("unknown --backend fast", "choose from"), lambda w: ["bench", w.onnx, "--backend",
                                                                                       "fast"]),
    C("bench/batch-size-zero", 2, "--batch-size needs positive integers", lambda w: ["bench", w.onnx, "--batch-size",
                                                                                     "8,0"]),
    C("bench/threads-zero", 2, "--threads must be >= 1", lambda w: ["bench", w.onnx, "--threads", "0"]),
    C("bench/formats-unknown", 2, "unknown --format 'jpeg'", lambda w: ["bench", w.onnx, "--formats", "png,jpeg"]),
    C("bench/model-random-bytes", 1, "re-export", lambda w: ["bench", w.file("r.onnx", os.urandom(512)),
                                                             "--formats", "none", "--backend", "onnxruntime"]),
]

CASES += [  # -- train ---------------------------------------------------------------------------------------
    C("train/img-resolution-unsupported", 2, ("--img-resolution", "16, 32, 64, 128"),
      lambda w: ["train", "--out", w.out, "--img-resolution", "20", "--steps", "1"]),
    C("train/img-channels-two", 2, ("--img-channels", "1 or 3"),
      lambda w: ["train", "--out", w.out, "--img-channels", "2", "--steps", "1"]),
    C("train/batch-size-zero", 2, "--batch-size", lambda w: ["train", "--out", w.out, "--batch-size", "0",
                                                             "--steps", "1"]),
    C("train/z-dim-zero", 2, "--z-dim", lambda w: ["train", "--out", w.out, "--z-dim", "0", "--steps", "1"]),
    C("train/code-dim-not-below-z-dim", 2, ("--code-dim", "got 40", "smaller --code-dim"),
      lambda w: ["train", "--out", w.out, "--z-dim", "32", "--steps", "1"]),
    C("train/epochs-and-steps", 2, ("--epochs", "--steps"),
      lambda w: ["train", "--out", w.out, "--epochs", "1", "--steps", "5"]),
    C("train/data-unknown-name", 2, ("unknown --data 'imagenet'",),
      lambda w: ["train", "--out", w.out, "--data", "imagenet", "--steps", "1"]),
    C("train/data-folder-empty", 1, ("no images", "--data"),
      lambda w: ["train", "--out", w.out, "--data", w.dir("images"), "--steps", "1"]),
    C("train/data-folder-unreadable-images", 1, ("could be read", "valid jpg/png/webp"),
      lambda w: ["train", "--out", w.out, "--data", w.dir("images", {"a.png": "not a png", "b.jpg": "nor a jpeg"}),
                 "--steps", "1"]),
    C("train/data-folder-smaller-than-batch", 2, ("--batch-size 8 is larger than the data set (3 images)",
                                                  "lower --batch-size"),
      lambda w: ["train", "--out", w.out, "--data", w.images("faces", 3), "--batch-size", "8", "--steps", "1"]),
    C("train/data-gray-folder-as-rgb", 2, ("is grayscale", "pass --img-channels 1"),
      lambda w: ["train", "--out", w.out, "--data", w.images("faces", 4), "--img-channels", "3", "--batch-size", "2",
                 "--steps", "1"]),
    C("train/data-orl-as-rgb", 2, ("--data orl is grayscale", "pass --img-channels 1"),
      lambda w: ["train", "--out", w.out, "--data", "orl", "--img-channels", "3", "--steps", "1"]),
    C("train/resume-missing", 1, "not found", lambda w: ["train", "--resume", w.root / "runs" / "00007-gone",
                                                         "--steps", "1"]),
    C("train/resume-other-channel-count", 2, ("--img-channels 3 differs from the run being resumed (1)",),
      lambda w: ["train", "--resume", w.train_run(), "--img-channels", "3"]),
    C("train/resume-without-checkpoint", 1, ("has no checkpoint.pt",), lambda w: ["train", "--resume", w.train_run()]),
    C("train/out-is-a-file", 1, ("cannot create the output folder", "pass a writable --out"),
      lambda w: ["train", "--out", w.file("runs", "x"), "--steps", "1"]),
]


def _other_job(w: Workspace) -> Path:
    """An output directory a finished `generate --seed 1` left (its manifest, one image)."""
    from dcgan_rt.digest import sha256_file
    from dcgan_rt.manifest import Job

    model = w.onnx
    job = Job(model_path=str(model), model_kind="onnx", model_sha256=sha256_file(model),
              weights_sha256=sha256_file(model), precision="fp32", model_card={}, seed=1, start=0, count=8,
              format="png", save_latents=False, images_per_file=None, image_shape=(16, 16, 1), z_dim=16)
    out = w.dir("out")
    (out / "manifest.json").write_text(json.dumps({**job.to_manifest(), "complete": True, "runs": []}))
    (out / "000000000.png").write_bytes(b"\x89PNG made by the other job")
    return out


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess
    before: dict
    after: dict


@pytest.fixture(scope="module")
def outcomes(tiny_model_dir, tiny_onnx, tmp_path_factory) -> dict[str, Outcome]:
    """Set up every case, run them all (PARALLEL at a time), snapshot each folder before and after."""
    base = tmp_path_factory.mktemp("bad_input")
    prepared = []
    for case in CASES:
        root = base / case.id.replace("/", "__")
        root.mkdir()
        w = Workspace(root, tiny_model_dir, tiny_onnx)
        argv = case.argv(w)
        prepared.append((case, root, argv, snapshot(root)))

    def run(item):
        case, root, argv, before = item
        proc = run_cli(*argv, cwd=root, env={"DCGAN_RT_OFFLINE": "1"}, timeout=300)
        return case.id, Outcome(proc, before, snapshot(root))

    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(pool.map(run, prepared))


def test_the_matrix_is_wide():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    commands = {i.split("/")[0] for i in ids}
    assert commands == {"train", "export", "generate", "sample", "interpolate", "info", "bench"}
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_clear_error_and_writes_nothing(outcomes, case):
    outcome = outcomes[case.id]
    proc = outcome.proc
    out = proc.stdout + proc.stderr
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}:\n{out}"
    assert "Traceback" not in out, out
    for needle in case.needles:
        assert needle.lower() in out.lower(), f"{needle!r} not in:\n{out}"
    messages = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    if messages:  # ours: one red line, nothing else on stderr
        assert len(messages) == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    else:  # Typer's own usage errors: one boxed message and where to look
        assert proc.returncode == 2 and "Error" in proc.stderr and "Try 'dcgan-rt" in proc.stderr, proc.stderr
    new = {p for p in outcome.after if p not in outcome.before and Path(p).name not in LOCK_FILES}
    changed = {p for p in outcome.before if outcome.after.get(p) != outcome.before[p]}
    assert not new and not changed, f"written: {sorted(new)}, changed: {sorted(changed)}"


if __name__ == "__main__":  # the table in docs/errors.md
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        from dcgan_rt.export.onnx_export import export_onnx
        from dcgan_rt.train.release import load_generator

        model_dir = make_model_dir(Path(tmp) / "model")
        g, card = load_generator(model_dir)
        (Path(tmp) / "onnx").mkdir()
        onnx_path = export_onnx(g, card, Path(tmp) / "onnx" / "generator.onnx")
        for case in CASES:
            root = Path(tmp) / case.id.replace("/", "__")
            root.mkdir()
            argv = case.argv(Workspace(root, model_dir, onnx_path))
            proc = run_cli(*argv, cwd=root)
            lines = [line.strip("│ ") for line in proc.stderr.splitlines()
                     if line.strip() and not line.startswith("Usage:") and "╭" not in line and "╰" not in line]
            text = " ".join(lines).replace(str(root) + "/", "").replace(tmp, "/tmp").replace("|", "\\|")
            print(f"| `{case.id}` | {proc.returncode} | {text} |")
