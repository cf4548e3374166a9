"""How good are the faces? FID, KID and memorisation of `dcgan-rt train --data orl`, and the curves behind its defaults.

Run:
  python benchmarks/quality_faces.py default                # `dcgan-rt train --data orl` (all defaults), timed, scored
  python benchmarks/quality_faces.py default -- --img-channels 3 --data DIR   # any other default command
  python benchmarks/quality_faces.py curve --out DIR --marks 40,80,160 -o augment=ada -o steps=5000
                                                            # train with these options and keep the generator
                                                            # at each mark (thousands of images): a quality curve
  python benchmarks/quality_faces.py score MODEL... [--data orl]   # FID, KID, memorisation of run dirs/generators
  python benchmarks/quality_faces.py floor [--data orl]     # real vs real: 200 photos against the other 200

The measure is `dcgan-rt evaluate MODEL --data orl -n 400 --metrics fid,kid,memorization`: 400 generated
images of z(0, 0..399) against the 400 real photos, through the standard FID Inception. The
floor is what two halves of the real set score against each other with the same Inception
(fewer images on each side raise FID: 200 vs 200 is the fair floor for a 400-image set).
Targets (issue: faces): FID <= 60, memorisation >= 0.8 (the median distance from a generated
image to its nearest training photo over the median distance between nearest training
photos), default length <= 20 minutes on 2 CPU cores.

`curve` runs anywhere the project runs: on a GPU machine it trains many configurations at
once, and the generators it keeps are scored later on any machine with `score`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _exe() -> str:
    return str(Path(sys.executable).with_name("dcgan-rt"))


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def run_curve(out: Path, marks: list[float], options: dict, num_images: int = 400,
              keep_generators: bool = False) -> None:
    """Train with `options` (TrainOptions fields); at each mark (kimg) keep the images
    z(0, 0..num_images-1) of the release generator in out/marks.npz (uint8, small enough to
    bring back from a GPU machine) and, with keep_generators, the generator itself."""
    import numpy as np
    import torch

    from dcgan_rt.latents import latent_range
    from dcgan_rt.pixels import to_uint8_tensor
    from dcgan_rt.train.loop import Callback, train_run
    from dcgan_rt.train.options import TrainOptions

    marks = sorted(marks)
    out.mkdir(parents=True, exist_ok=True)
    kept: dict[str, np.ndarray] = {}
    timeline: dict[str, dict] = {}

    class KeepMarks(Callback):
        def __init__(self):
            self.next = 0
            self.t0 = time.perf_counter()

        def on_epoch_end(self, state) -> None:
            if self.next >= len(marks) or state.cur_nimg < marks[self.next] * 1000:
                return
            card = json.loads((state.run_dir / "generator.json").read_text())
            if card.get("training_step") != state.step:
                return  # no snapshot at this epoch end: wait for the next one
            while self.next < len(marks) and state.cur_nimg >= marks[self.next] * 1000:
                name = f"kimg{int(marks[self.next]):05d}"
                g = state.generator
                was_training = g.training
                g.eval()
                device = next(g.parameters()).device
                with torch.no_grad():
                    z = torch.from_numpy(latent_range(0, 0, num_images, state.opts.z_dim)).to(device)
                    kept[name] = to_uint8_tensor(torch.cat([g(b).float() for b in z.split(100)])).cpu().numpy()
                g.train(was_training)
                timeline[name] = {"kimg": state.cur_nimg / 1000, "step": state.step,
                                  "seconds": round(time.perf_counter() - self.t0, 1)}
                if keep_generators:
                    dest = out / name
                    dest.mkdir(exist_ok=True)
                    for f in ("generator.safetensors", "generator.json"):
                        shutil.copy2(state.run_dir / f, dest / f)
                np.savez_compressed(out / "marks.npz", **kept)
                (out / "marks.json").write_text(json.dumps({"options": options, "marks": timeline}, indent=1))
                print(f"kept {name}: step {state.step}, {time.perf_counter() - self.t0:.0f} s", flush=True)
                self.next += 1

    batch = options.get("batch_size", TrainOptions().batch_size)
    spacing = min(b - a for a, b in zip([0.0] + marks, marks))
    opts = TrainOptions(**{"out": str(out / "runs"), "steps": int(marks[-1] * 1000 // batch) + 1,
                           "snapshot_kimg": spacing / 2, **options})
    train_run(opts, callbacks=[KeepMarks()])


def score_images(npz: Path, data: str) -> None:
    """FID, KID and memorisation of each mark's images in a curve's marks.npz."""
    import numpy as np
    import torch

    from dcgan_rt.train.data import load_dataset
    from dcgan_rt.train.evaluation import Evaluator

    marks = np.load(npz)
    info = json.loads(npz.with_suffix(".json").read_text())
    first = marks[marks.files[0]]
    real = load_dataset(data, int(first.shape[-1]), int(first.shape[1])).images
    evaluator = Evaluator(real, data, ("fid", "kid", "memorization"))
    for name in sorted(marks.files):
        images = torch.from_numpy(marks[name])
        result = evaluator.score([images], images.shape[0])
        mem = result.memorization.ratio
        at = info["marks"].get(name, {})
        print(f"{npz.parent.name} {name} step {at.get('step')} ({at.get('seconds')} s): FID {result.fid:.1f}  "
              f"KID {result.kid * 1e3:.1f}e-3  memorisation {mem:.2f}", flush=True)


def evaluate(model: str | Path, data: str, n: int = 400) -> dict:
    cmd = [_exe(), "evaluate", str(model), "--data", data, "-n", str(n), "--metrics", "fid,kid,memorization",
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def show(name: str, result: dict) -> None:
    scores = result.get("scores", result)
    fid, kid, mem = scores.get("fid"), scores.get("kid"), scores.get("memorization")
    parts = [f"FID {fid:.1f}" if fid is not None else "", f"KID {kid * 1e3:.1f}e-3" if kid is not None else "",
             f"memorisation {mem:.2f}" if mem is not None else ""]
    print(f"{name}: {'  '.join(p for p in parts if p)}", flush=True)


def run_default(out: Path, extra: list[str], data: str) -> None:
    cmd = [_exe(), "train", "--data", data, "--out", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    print(f"default face run: {wall / 60:.1f} min wall", flush=True)
    show(str(out / "latest"), evaluate(out / "latest", data))


def run_floor(data: str, img_resolution: int = 64, img_channels: int = 1) -> dict:
    """Real vs real: one half of the data set (a fixed random half) against the other."""
    import torch

    from dcgan_rt.train.data import load_dataset
    from dcgan_rt.train.evaluation import Evaluator

    real = load_dataset(data, img_resolution, img_channels).images
    order = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(0))
    half = real.shape[0] // 2
    a, b = real[order[:half]], real[order[half:2 * half]]
    result = Evaluator(a, f"{data}-half-a", ("fid", "kid")).score([b], b.shape[0])
    scores = {"fid": result.fid, "kid": result.kid}
    show(f"real vs real ({data}, {half} vs {half})", scores)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("default", help="run `dcgan-rt train --data orl` and score it")
    d.add_argument("--out", type=Path, default=None, help="runs folder (default: a temporary one)")
    d.add_argument("--data", default="orl")
    d.add_argument("train_args", nargs=argparse.REMAINDER, help="extra flags after --")
    c = sub.add_parser("curve", help="train and keep the generator at each mark (kimg)")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--marks", required=True, help="comma list of thousands of images, e.g. 40,80,160")
    c.add_argument("-o", "--option", action="append", default=[], help="TrainOptions field=value")
    c.add_argument("--images", type=int, default=400, help="images kept per mark (z(0, 0..N-1))")
    c.add_argument("--keep-generators", action="store_true")
    si = sub.add_parser("score-images", help="FID, KID, memorisation of a curve's marks.npz")
    si.add_argument("npz", nargs="+", type=Path)
    si.add_argument("--data", default="orl")
    s = sub.add_parser("score", help="FID, KID, memorisation of run directories / generators")
    s.add_argument("models", nargs="+")
    s.add_argument("--data", default="orl")
    f = sub.add_parser("floor", help="real vs real FID and KID (half against half)")
    f.add_argument("--data", default="orl")
    f.add_argument("--img-resolution", type=int, default=64)
    f.add_argument("--img-channels", type=int, default=1)
    args = ap.parse_args()
    if args.what == "default":
        extra = [a for a in args.train_args if a != "--"]
        if args.out is None:
            with tempfile.TemporaryDirectory() as tmp:
                run_default(Path(tmp), extra, args.data)
        else:
            run_default(args.out, extra, args.data)
    elif args.what == "curve":
        options = dict(kv.split("=", 1) for kv in args.option)
        run_curve(args.out, [float(m) for m in args.marks.split(",")],
                  {k: _parse_value(v) for k, v in options.items()}, args.images, args.keep_generators)
    elif args.what == "score-images":
        for npz in args.npz:
            score_images(npz, args.data)
    elif args.what == "score":
        for model in args.models:
            show(model, evaluate(model, args.data))
    else:
        run_floor(args.data, args.img_resolution, args.img_channels)


if __name__ == "__main__":
    os.environ.setdefault("DCGAN_RT_OFFLINE", "1")
    main()
