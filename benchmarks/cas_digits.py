"""Is a conditional generator's labelled output useful training data? CAS on digits.

Run:
  python benchmarks/cas_digits.py run --out cas/            # split, train the conditional default, score
  python benchmarks/cas_digits.py split cas/digits-4000     # only write the 4,000 training digits as a
                                                            # class-subfolder folder (OUT/<digit>/*.png)
  python benchmarks/cas_digits.py score RUN_DIR             # score a conditional digit model

`run` writes the fixed stratified 4,000 / 1,000 split of mnist-5k (dcgan_rt.train.cas),
trains `dcgan-rt train --data OUT/digits-4000 --conditional` (timed; extra arguments
after `--` go to train), then scores its generator.safetensors: Classification Accuracy
Score (Ravuri & Vinyals, 2019) = the held-out accuracy of a fixed small classifier
trained only on 10,000 generated digits (image i: latents z(0, i), label i mod 10),
compared with the same classifier trained on the 4,000 real digits; and label fidelity
= the share of generated digits the digit classifier reads as the asked label.
Targets: CAS >= 0.95 x the real-trained accuracy, label fidelity >= 95 %, and the
training run within 10 minutes on 2 CPU cores. `--json FILE` keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CAS_RATIO_TARGET = 0.95
FIDELITY_TARGET = 0.95
MINUTES_TARGET = 10.0


def split(out: Path) -> Path:
    from dcgan_rt.train.cas import write_class_folder

    count = write_class_folder(out)
    print(f"wrote {count:,} training digits to {out} (one subfolder per digit; 1,000 held out)", flush=True)
    return out


def score(model: Path, num_generated: int, steps: int) -> dict:
    from dcgan_rt.train.cas import classification_accuracy_score
    from dcgan_rt.train.release import load_generator

    generator, card = load_generator(model)
    result = classification_accuracy_score(generator, num_generated, steps=steps)
    print(result, flush=True)
    met = result.ratio >= CAS_RATIO_TARGET and result.label_fidelity >= FIDELITY_TARGET
    print(f"  targets (CAS >= {CAS_RATIO_TARGET} x real, label fidelity >= {FIDELITY_TARGET:.0%}): "
          f"{'met' if met else 'NOT met'}", flush=True)
    return {**result.to_dict(), "model": str(model), "training_step": card.training_step}


def train(data: Path, out: Path, extra: list[str]) -> tuple[Path, float]:
    exe = Path(sys.executable).with_name("dcgan-rt")
    cmd = [str(exe), "train", "--data", str(data), "--conditional", "--out", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    minutes = (time.perf_counter() - start) / 60
    print(f"training: {minutes:.1f} min wall (target <= {MINUTES_TARGET:g} on 2 CPU cores)", flush=True)
    return (out / "latest").resolve(), minutes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="split, train, score")
    p_run.add_argument("--out", type=Path, required=True, help="a new folder for the split and the run")
    p_split = sub.add_parser("split", help="write the 4,000 training digits")
    p_split.add_argument("out", type=Path)
    p_score = sub.add_parser("score", help="score a run directory or generator.safetensors")
    p_score.add_argument("model", type=Path)
    for p in (p_run, p_score):
        p.add_argument("-n", "--num-generated", type=int, default=10_000)
        p.add_argument("--classifier-steps", type=int, default=None, help="default: the fixed recipe's")
        p.add_argument("--json", type=Path, help="write the figures here")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    args = parser.parse_args(argv)
    os.environ.setdefault("DCGAN_RT_OFFLINE", "1")
    from dcgan_rt.errors import DcganRtError
    from dcgan_rt.train.cas import CLASSIFIER_STEPS

    try:
        if args.command == "split":
            split(args.out)
            return 0
        steps = args.classifier_steps or CLASSIFIER_STEPS
        if args.command == "score":
            figures = score(args.model, args.num_generated, steps)
        else:
            data = split(args.out / "digits-4000")
            run_dir, minutes = train(data, args.out / "runs", extra)
            figures = {**score(run_dir, args.num_generated, steps), "train_minutes": round(minutes, 2),
                       "train_args": extra}
    except DcganRtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
