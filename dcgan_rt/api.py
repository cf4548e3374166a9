"""dcgan-rt as a library: each command of the CLI is one function here, and the CLI calls it.

Core tier: importing this module loads nothing heavy; each function imports what it
needs (torch for train, import_generator, export and evaluate; only the chosen
runtime for generate from an ONNX file). Errors are dcgan_rt.errors.DcganRtError
subclasses whose message says what to do, as on the command line.

    from dcgan_rt import api

    run = api.train(data="mnist-5k", out="runs", epochs=20)   # -> TrainResult
    api.export(run.run_dir, fp16=True)                        # -> ExportReport
    api.generate(run.run_dir, n=10_000, out="digits")         # -> GenerateResult
    api.evaluate(run.run_dir, num_images=10_000)              # -> EvalResult

docs/api.md has a runnable example (tests/test_api.py runs it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from dcgan_rt.errors import DcganRtError, UsageError

if TYPE_CHECKING:  # for the signatures only: none of these is imported at run time here
    from dcgan_rt.export.exporter import ExportReport
    from dcgan_rt.labels import LabelRequest
    from dcgan_rt.pipeline import GenerateResult, Reporter
    from dcgan_rt.train.evaluation import EvalResult
    from dcgan_rt.train.options import TrainOptions

__all__ = ["TrainResult", "train", "train_options", "import_generator", "export", "generate", "evaluate"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or resumed and finished) training run left."""

    run_dir: Path  # holds generator.safetensors + generator.json, checkpoint.pt, samples/, metrics.jsonl
    steps: int  # optimizer steps done in total
    images: int  # real images shown to the discriminator in total

    @property
    def generator(self) -> Path:
        return self.run_dir / "generator.safetensors"


def train_options(data: str | None = None, *, out: str | Path | None = None, resume: str | Path | None = None,
                  **options: Any) -> "TrainOptions":
    """The options a `train` call would run with, checked; nothing is trained or written.

    `options` are dcgan_rt.train.options.TrainOptions fields (epochs, steps, kimg,
    img_resolution, img_channels, batch_size, z_dim, g_width, lr_g, device, seed...); None
    or absent means the recipe's default (docs/training.md). A built-in source trains at
    its own size unless told otherwise. With `resume` (a run directory) the run's recorded
    options apply, and only the length, device, learning rates and snapshot spacing may
    change. A new run's options are checked without importing torch."""
    from dcgan_rt.train.options import TrainOptions, check_data_source, source_defaults

    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UsageError(f"unknown training option(s) {', '.join(unknown)}: choose from {', '.join(sorted(fields))}")
    given = {**options, "data": data, "out": None if out is None else str(out)}
    if resume is not None:
        if not Path(resume).is_dir():
            raise DcganRtError(f"--resume {resume}: run directory not found (pass one that dcgan-rt train made, "
                               "e.g. runs/latest)")
        from dcgan_rt.train.run_config import resume_options

        return resume_options(Path(resume), {k: v for k, v in given.items() if k != "out"})
    size = source_defaults(data or TrainOptions().data)
    if size is not None:
        given["img_resolution"] = given.get("img_resolution") or size[0]
        given["img_channels"] = given.get("img_channels") or size[1]
    opts = TrainOptions(**{k: v for k, v in given.items() if v is not None})
    check_data_source(opts.data)
    from dcgan_rt.train.rundir import check_out_dir

    check_out_dir(opts.out)
    return opts


def train(data: str | None = None, *, out: str | Path | None = None, resume: str | Path | None = None,
          callbacks: Sequence[Any] = (), on_run_dir: Callable[[Path], None] | None = None,
          **options: Any) -> TrainResult:
    """Train a DCGAN on `data` (mnist-5k, orl, mnist, celeba or a folder of images) and write a
    run directory under `out` (default runs/), or continue `resume`; see train_options for
    `options`. `callbacks` get the loop's events (dcgan_rt.train.callbacks.Callback); `on_run_dir`
    is told the run directory as soon as it exists. Under torchrun every rank calls this."""
    opts = train_options(data, out=out, resume=resume, **options)
    from dcgan_rt.train.loop import train_run

    state = train_run(opts, resume=resume, callbacks=callbacks, on_run_dir=on_run_dir)
    return TrainResult(run_dir=Path(state.run_dir), steps=state.step, images=state.cur_nimg)


def import_generator(checkpoint: str | Path, out: str | Path, *, dataset: str = "unknown") -> Path:
    """Import a generator state dict trained by pytorch/examples' dcgan/main.py
    (netG_epoch_N.pth) into `out` as generator.safetensors + generator.json; returns the
    weights path. Sizes come from the tensor shapes; other layouts are refused
    (docs/export.md)."""
    from dcgan_rt.train.pytorch_examples import import_checkpoint

    return import_checkpoint(checkpoint, out, dataset=dataset)


def export(model: str | Path, out: str | Path | None = None, *, fp16: bool = False, uint8: bool = False,
           int8: bool = False, engine: bool | None = None, max_batch: int | None = None, opset: int | None = None,
           log: Callable[[str], None] | None = None) -> "ExportReport":
    """Export a run directory or generator.safetensors to ONNX (fp32; fp16, uint8 and int8 variants
    on request) and, where TensorRT and a GPU exist (or engine=True), an engine; every file is
    checked against PyTorch within DESIGN §5's bounds. Writes to MODEL's export/ folder or
    `out`. Returns the files written and the parity results; raises NumericalError (with
    `.results`) when a check fails. Arguments are checked before torch is imported."""
    from dcgan_rt.export.preflight import DEFAULT_OPSET, plan_export

    opset = DEFAULT_OPSET if opset is None else opset
    options = frozenset(name for name, on in (("fp16", fp16), ("uint8", uint8), ("int8", int8)) if on)
    plan_export(model, engine, max_batch, opset, options)
    from dcgan_rt.export.exporter import export_model

    return export_model(model, out=None if out is None else Path(out), options=options, engine=engine,
                        max_batch=max_batch, opset=opset, log=log or (lambda message: None))


def generate(model: str | Path, n: int, out: str | Path, *, seed: int = 0, start: int = 0,
             batch_size: int | None = None, backend: str = "auto", format: str = "png",
             shard: tuple[int, int] | None = None, overwrite: bool = False, save_latents: bool = False,
             gpu: int | None = None, precision: str | None = None, labels: "LabelRequest | None" = None,
             layout: str = "flat", reporter: "Reporter | None" = None) -> "GenerateResult":
    """Write images start..start+n-1 of `seed` to `out` (png files, npy or tar shards) with
    manifest.json; image i is a pure function of (model, seed, i, label) (docs/latents.md).
    batch_size None measures and picks; shard (K, N) writes the K-th of N slices; `labels`
    (dcgan_rt.generate_request.LabelRequest) overrides a conditional model's default label
    rule; layout "by-class" writes png into one folder per class. Re-running resumes;
    another model or seed in a non-empty `out` is refused unless overwrite. `reporter`
    (dcgan_rt.pipeline.Reporter) hears progress. docs/generate.md."""
    from dcgan_rt.labels import LabelRequest
    from dcgan_rt.pipeline import GenerateRequest, generate as run_generate

    request = GenerateRequest(model=model, out=out, n=n, seed=seed, start=start, batch_size=batch_size,
                              backend=backend, format=format, shard=shard, overwrite=overwrite,
                              save_latents=save_latents, gpu=gpu, precision=precision,
                              labels=labels if labels is not None else LabelRequest(), layout=layout)
    return run_generate(request, reporter)


def evaluate(model: str | Path, data: str | None = None, num_images: int = 10_000, *,
             num_real: int | None = None, seed: int = 0, metrics: str | Iterable[str] | None = "auto",
             inception: str | Path | None = None, backend: str = "auto", data_root: str | Path | None = None,
             crop: int | None = None, batch_size: int = 32, device: str = "auto", progress: Any = None,
             log: Callable[[str], None] | None = None) -> "EvalResult":
    """Score MODEL's images z(seed, 0..num_images-1) against real `data` (default: what it was
    trained on): FID, KID and memorisation, digit scores for MNIST models (docs/evaluate.md).
    `metrics` is a comma list of fid, kid, digits, memorization, or auto."""
    if isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    from dcgan_rt.train.evaluation import evaluate_model

    return evaluate_model(model, data, num_images, num_real=num_real, seed=seed,
                          metrics=metrics, inception=inception, backend=backend,
                          data_root=data_root, device=device, batch_size=batch_size, progress=progress, log=log,
                          crop=crop)
