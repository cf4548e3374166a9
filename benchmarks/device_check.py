"""One command for a GPU machine: prove the GPU paths and measure them, within a time budget.

    python benchmarks/device_check.py [--out DIR] [--budget-s 270] [--face-data DIR]
    python benchmarks/device_check.py --cpu --out DIR     # the same steps, tiny, on the CPU

Steps (benchmarks/device_check_steps.py has each one): (a) environment, (b) the
`gpu`-marked tests, (c) the default training recipe on CUDA (AMP, channels_last)
against the CPU cores, (d) CUDA vs CPU generator parity (fp32 with TF32 off, fp16
opt-in), (e) torch-CUDA backend model-only throughput against the GPU's measured
fp16/bf16 matmul ceiling, (f) `generate` end to end (npy, PNG) against the machine's
PNG-encode limit, (g) one torchrun NCCL training step, (h) the face recipe at 64 px
RGB and the hours CelebA's default length would take.

Every step is isolated (a failure is recorded and the next step runs) and
time-boxed (its own limit and what is left of --budget-s). The JSON report is
rewritten after every step, so a run cut off by the machine still reports;
`device_check.log` holds the log; these two are the only files written to --out
(its files travel back from the GPU machine, a few at most). `--cpu` is part of the test suite
(tests/test_device_check.py), so this script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

# Where `pip install -e .` could not run (say, an older setuptools on the GPU machine), the
# checkout is made importable as installed: dcgan_rt from the repo, dcgan_rt.train/export/cli
# from ./train, ./export, ./cli (the package-dir mapping of pyproject.toml). Subprocesses get
# it through this sitecustomize on PYTHONPATH.
SHIM = """import importlib.machinery, sys
REPO = {repo!r}
MAPPED = {{"dcgan_rt.train", "dcgan_rt.export", "dcgan_rt.cli"}}
class _CheckoutFinder:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.PathFinder.find_spec(name, [REPO]) if name in MAPPED else None
if REPO not in sys.path:
    sys.path.insert(0, REPO)
sys.meta_path.insert(0, _CheckoutFinder())
"""


def ensure_importable(work: Path) -> str:
    """How dcgan-rt is importable here: "installed", or "checkout (path shim)"."""
    try:
        import dcgan_rt.train  # noqa: F401
        return "installed"
    except ImportError:
        pass
    shim = work / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM.format(repo=str(REPO)))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH", "")) if p)
    exec(compile(SHIM.format(repo=str(REPO)), "device_check shim", "exec"), {})
    import dcgan_rt.train  # noqa: F401,F811
    return "checkout (path shim: pip install -e . had not run)"


import device_check_steps as steps  # noqa: E402

REPORT = "device_check.json"
LOG = "device_check.log"
RESERVE_S = 5.0  # kept back from the budget for the final report and summary


class StepTimeout(Exception):
    pass


@dataclass
class Context:
    """What every step gets: where to write, how big, and how long it may take."""

    out: Path
    scratch: Path  # runs, images and subprocess logs: never under --out (only the report travels back)
    cpu: bool
    deadline: float
    face_data: str | None
    sizes: dict
    log_file: object = None
    shared: dict = field(default_factory=dict)  # results later steps reuse (the model folder...)

    @property
    def device(self) -> str:
        return "cpu" if self.cpu else "cuda"

    @property
    def work(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, limit: float) -> float:
        """Seconds a subprocess of this step may run: its limit, or what the budget has left."""
        return max(1.0, min(limit, self.remaining() - RESERVE_S))

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        if self.log_file is not None:
            self.log_file.write(line + "\n")
            self.log_file.flush()


def write_report(path: Path, report: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, path)


def run_step(ctx: Context, name: str, title: str, fn, limit: float) -> dict:
    """Run one step in isolation, time-boxed; returns its report entry."""
    if ctx.remaining() < RESERVE_S + 3:
        return {"title": title, "status": "skipped", "reason": "the time budget ran out before this step"}
    seconds = max(1, int(min(limit, ctx.remaining() - RESERVE_S)))

    def on_alarm(signum, frame):
        raise StepTimeout(f"step ran past its {seconds} s time box")

    ctx.log(f"step {name}: {title} (time box {seconds} s)")
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds + 5)  # subprocesses time out first; this catches an in-process hang
    try:
        result = fn(ctx, seconds)
        status = result.pop("status", "ok") if isinstance(result, dict) else "ok"
        entry = {"title": title, "status": status, "result": result}
    except StepTimeout as exc:
        entry = {"title": title, "status": "timeout", "error": str(exc)}
    except Exception as exc:  # any failure is this step's, recorded; the next step runs
        entry = {"title": title, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc(limit=8)}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    entry["seconds"] = round(time.monotonic() - start, 2)
    ctx.log(f"step {name}: {entry['status']} in {entry['seconds']} s"
            + (f" ({entry.get('error')})" if entry.get("error") else ""))
    return entry


def summary_lines(report: dict) -> list[str]:
    lines = [f"device check ({report['mode']}): {report['device']}, {report['seconds']} s of {report['budget_s']} s"]
    for name, entry in report["steps"].items():
        headline = entry.get("result", {}).get("headline") if isinstance(entry.get("result"), dict) else None
        text = headline or entry.get("error") or entry.get("reason") or ""
        lines.append(f"  ({name}) {entry['title']}: {entry['status']}{' - ' + text if text else ''}")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device_check_out"),
                        help="folder for the JSON report, the log and scratch files (default: $OUT, else "
                             "./device_check_out)")
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU: a rehearsal (and a test)")
    parser.add_argument("--budget-s", type=float, default=270.0, help="total seconds for every step together")
    parser.add_argument("--face-data", default=None,
                        help="data source for the face recipe (step h), e.g. a CelebA folder or 'orl' where "
                             "the installed dcgan-rt has it; default: a synthetic folder of colour 64x64 images")
    parser.add_argument("--only", default=None, help="comma-separated step letters to run (default: all)")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder for runs, images and logs, kept afterwards (default: a temporary "
                             "folder, removed at the end); never put it under --out, whose files travel back")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="device_check_"))
    ctx = Context(out=out, scratch=scratch, cpu=args.cpu, deadline=start + args.budget_s, face_data=args.face_data,
                  sizes=steps.SIZES["cpu" if args.cpu else "gpu"])
    wanted = set(args.only.split(",")) if args.only else None
    report = {"mode": "cpu rehearsal" if args.cpu else "gpu", "device": ctx.device, "budget_s": args.budget_s,
              "dcgan_rt": ensure_importable(ctx.work),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sizes": ctx.sizes, "seconds": 0.0,
              "finished": False,
              "steps": {name: {"title": title, "status": "pending"} for name, title, _, _ in steps.STEPS}}
    with open(out / LOG, "w") as log_file:
        ctx.log_file = log_file
        write_report(out / REPORT, report)
        for name, title, fn, limit in steps.STEPS:
            if wanted is not None and name not in wanted:
                report["steps"][name] = {"title": title, "status": "skipped", "reason": "not asked for (--only)"}
                continue
            report["steps"][name] = run_step(ctx, name, title, fn, limit)
            report["seconds"] = round(time.monotonic() - start, 1)
            write_report(out / REPORT, report)
        report["finished"] = True
        report["seconds"] = round(time.monotonic() - start, 1)
        write_report(out / REPORT, report)
        for line in summary_lines(report):
            ctx.log(line)
        ctx.log(f"report: {out / REPORT}")
    if args.work is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
