"""What `dcgan-rt bench` measures: model-only throughput and latency per backend and batch
size, end-to-end generate throughput per format, and the ceiling they are compared with.

Core tier: numpy at import; every runtime is imported by the backend that needs it.

- Model-only: `backend(z)` on real latents, `warmup` untimed calls, then `repeats`
  timed calls per batch size; images/s = batch / median time, and p50 / p99 latency.
- FLOPs per image, counted from the ModelConfig: 2 x the multiply-adds of every
  ConvTranspose2d, C_in * C_out * k * k * H_in * W_in (BatchNorm is folded into the
  weights at export; ReLU / tanh are not counted). 209.3 MFLOP for the default
  64x64 RGB generator.
- Ceiling: the device's measured matrix-multiply rate divided by FLOPs per image.
  On the CPU, the fastest float32 GEMM installed (dcgan_rt.gemm_ceiling: numpy,
  torch when loaded, ONNX Runtime and OpenVINO, two large square matrices, every
  core); on a GPU, torch.matmul. Each backend's share of it is images/s / ceiling
  images/s. Absolute times on shared machines are noisy; the ceiling is measured in
  the same run, before and after the sweep, and the faster of the two is used.
- int8 models on the CPU are shown against that same fp32 ceiling (how much faster
  than fp32 can ever be) and against their own runtime's int8 GEMM rate, measured
  the same way (dcgan_rt.gemm_ceiling.int8_gemm_rates): the share of integer
  throughput they reach.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcgan_rt import __version__
from dcgan_rt.backends.registry import BACKENDS, BuildOptions, backends_for, distribution
from dcgan_rt.config import ModelConfig
from dcgan_rt.environment import usable_cores
from dcgan_rt.errors import DcganRtError, UsageError
from dcgan_rt.gemm_ceiling import fp32_gemm_ceiling, gemm_rate, int8_gemm_rates, time_calls
from dcgan_rt.latents import latent_range
from dcgan_rt.model_path import ModelPath, resolve_model
from dcgan_rt.onnx_card import FLOAT_NCHW

BENCH_BACKENDS = tuple(BACKENDS)  # every row of dcgan_rt.backends.registry
DEFAULT_BATCH_SIZES = (1, 8, 32, 64, 128)
DEFAULT_FORMATS = ("png", "npy", "tar")
FLOPS_METHOD = ("2 x multiply-adds of each ConvTranspose2d, counted from the model config: "
                "C_in * C_out * k * k * H_in * W_in (BatchNorm folded, activations not counted)")
matmul_ceiling = fp32_gemm_ceiling  # the CPU's fp32 ceiling: the fastest float32 GEMM installed
LIBRARIES = ("numpy", "pillow", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt")


@dataclass(frozen=True)
class LayerCost:
    c_in: int
    c_out: int
    kernel: int
    h_in: int  # input height = width

    @property
    def macs(self) -> int:
        return self.c_in * self.c_out * self.kernel * self.kernel * self.h_in * self.h_in


def generator_layers(cfg: ModelConfig) -> list[LayerCost]:
    """The generator's ConvTranspose2d layers (dcgan_rt.train.networks.Generator)."""
    def width(resolution: int) -> int:
        return cfg.g_width * cfg.img_resolution // (2 * resolution)

    layers = [LayerCost(cfg.z_dim, width(4), 4, 1)]  # z -> 4x4
    resolution = 4
    while resolution * 2 < cfg.img_resolution:
        layers.append(LayerCost(width(resolution), width(resolution * 2), 4, resolution))
        resolution *= 2
    layers.append(LayerCost(width(resolution), cfg.img_channels, 4, resolution))
    return layers


def generator_flops(cfg: ModelConfig) -> int:
    """Floating-point operations per image (2 per multiply-add)."""
    return 2 * sum(layer.macs for layer in generator_layers(cfg))


def summarize(times: list[float], batch_size: int) -> dict:
    median = float(np.median(times))
    p50, p99 = (float(v) * 1e3 for v in np.percentile(times, [50, 99]))
    return {"images_per_s": batch_size / median, "latency_ms": {"p50": p50, "p99": p99}, "runs": len(times)}


def gpu_matmul_ceiling(device: int = 0, n: int = 8192, repeats: int = 10) -> dict | None:
    """torch.matmul rates on a CUDA GPU, float32 (TF32 off), float16 and bfloat16; None without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device(f"cuda:{device}")
    rates = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 ceiling is true fp32
    try:
        for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
            a = torch.randn(n, n, device=dev, dtype=dtype)
            out = torch.empty_like(a)

            def run(a=a, out=out):
                torch.matmul(a, a, out=out)
                torch.cuda.synchronize(dev)

            rates[name] = gemm_rate(run, n, repeats, warmup=2)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"flops_per_s": rates, "source": f"torch.matmul {n}x{n} on {torch.cuda.get_device_name(dev)}"}


def machine_info() -> dict:
    """Where the numbers came from: CPU, cores, memory, GPU, library versions."""
    gpu = None
    with contextlib.suppress(ImportError):
        from dcgan_rt.gpu import find_gpu

        found, why = find_gpu(0)
        gpu = ({"name": found.name, "compute_capability": found.compute_capability,
                "memory_gib": round(found.total_memory / 2**30, 1)} if found else {"none": why})
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": _memory_gib(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "dcgan_rt": __version__,
        "libraries": {name: v for name in LIBRARIES if (v := distribution(name))},
    }


@dataclass
class Target:
    """One (backend, artifact) pair to time."""

    backend: str
    path: Path
    precision: str
    output: str
    device: str  # "cpu" or "gpu"
    build: Callable[[], object]


def find_targets(model: str | Path, backends: list[str] | None = None,
                 threads: int | None = None) -> tuple[list[Target], list[dict], ModelConfig]:
    """Every backend that can run MODEL (and the variants exported beside it) here.

    Returns (targets, skipped [{"backend", "path", "reason"}], model config)."""
    wanted = set(backends or BENCH_BACKENDS)
    unknown = sorted(wanted - set(BENCH_BACKENDS))
    if unknown:
        raise UsageError(f"unknown backend {', '.join(unknown)}: choose from {', '.join(BENCH_BACKENDS)}")
    resolved = resolve_model(model)
    targets, skipped = [], []
    cfg = None
    for artifact in _artifacts(resolved):
        for spec in backends_for(artifact.kind):
            name = spec.name
            if name not in wanted:
                continue
            try:
                meta = _describe(artifact)
            except DcganRtError as exc:
                skipped.append({"backend": name, "path": str(artifact.path), "reason": str(exc)})
                break
            cfg = cfg or meta["config"]
            gpu_backend = spec.device == "gpu"
            reason = spec.unavailable()
            if reason is None and meta["precision"] == "fp16" and not gpu_backend:
                reason = "fp16 is a GPU precision; on the CPU it is emulated (bench it where there is a GPU)"
            if reason:
                skipped.append({"backend": name, "path": str(artifact.path), "reason": reason})
                continue
            targets.append(Target(name, artifact.path, meta["precision"], meta["output"],
                                  "gpu" if gpu_backend or (name == "torch" and _cuda()) else "cpu",
                                  _builder(name, artifact.path, threads)))
    if cfg is None:
        cfg = _describe(resolved)["config"]
    return targets, skipped, cfg


def run_bench(model: str | Path, backends: list[str] | None = None, batch_sizes=DEFAULT_BATCH_SIZES,
              warmup: int = 3, repeats: int = 10, formats=DEFAULT_FORMATS, generate_images: int = 2048,
              threads: int | None = None, progress: Callable[[str], None] = lambda msg: None) -> dict:
    """The whole benchmark as one JSON-able dict (the shape `dcgan-rt bench --json` prints)."""
    batch_sizes = check_batch_sizes(batch_sizes)
    if warmup < 0 or repeats < 1:
        raise UsageError("--warmup must be >= 0 and --repeats >= 1")
    targets, skipped, cfg = find_targets(model, backends, threads)
    flops = generator_flops(cfg)
    progress("measuring the CPU's matrix-multiply rate")
    ceilings = [matmul_ceiling()]  # again after the sweep; the faster one counts
    int8_cpu = any(t.precision == "int8" and t.device == "cpu" for t in targets)
    int8_rates = [int8_gemm_rates()] if int8_cpu else []
    gpu = gpu_matmul_ceiling() if any(t.device == "gpu" for t in targets) else None
    results = []
    for target in targets:
        progress(f"{target.backend} on {target.path.name}")
        try:
            backend = target.build()
        except DcganRtError as exc:
            skipped.append({"backend": target.backend, "path": str(target.path), "reason": str(exc)})
            continue
        with backend:
            for batch_size in batch_sizes:
                z = latent_range(0, 0, batch_size, cfg.z_dim)
                row = {"backend": target.backend, "detail": backend.describe(), "model": target.path.name,
                       "device": target.device, "precision": target.precision, "output": target.output,
                       "batch_size": batch_size,
                       **summarize(time_calls(lambda: backend(z), warmup, repeats), batch_size)}  # noqa: B023
                if type(backend).map_images is not _base_map_images():
                    row["pipelined_images_per_s"] = _pipelined_rate(backend, z, warmup, repeats)
                results.append(row)
    ceilings.append(matmul_ceiling())
    cpu = max(ceilings, key=lambda c: c["flops_per_s"])
    ceiling = {"cpu": {**cpu, "images_per_s": cpu["flops_per_s"] / flops,
                       "all_measurements": [c["flops_per_s"] for c in ceilings]}}
    if int8_cpu:  # int8 models are also held to their runtime's own integer GEMM rate
        int8_rates.append(int8_gemm_rates())
        ceiling["cpu_int8"] = _int8_ceilings(int8_rates, flops)
    if gpu:
        ceiling["gpu"] = {**gpu, "images_per_s": {k: v / flops for k, v in gpu["flops_per_s"].items()}}
    for row in results:
        row["ceiling_share"] = _share(row, ceiling)
        own = ceiling.get("cpu_int8", {}).get(row["backend"])
        if row["precision"] == "int8" and row["device"] == "cpu" and own:
            row["int8_gemm_share"] = row["images_per_s"] / own["images_per_s"]
    generate = []
    for fmt in formats or ():
        progress(f"end-to-end generate, {fmt}")
        generate.append(bench_generate(model, fmt, generate_images))
    return {
        "model": {"path": str(model), "config": cfg.to_dict(), "flops_per_image": flops,
                  "flops_method": FLOPS_METHOD},
        "machine": machine_info(),
        "settings": {"warmup": warmup, "repeats": repeats, "batch_sizes": list(batch_sizes),
                     "statistic": "images/s = batch size / median time of one call"},
        "ceiling": ceiling,
        "results": results,
        "best": best_rows(results),
        "generate": generate,
        "skipped": skipped,
    }


def check_batch_sizes(batch_sizes) -> tuple[int, ...]:
    sizes = tuple(batch_sizes)
    if not sizes or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in sizes):
        got = ", ".join(map(str, sizes)) or "none"
        raise UsageError(f"--batch-size needs positive integers, e.g. 1,8,64; got {got}")
    return sizes


def parse_list(text: str, what: str) -> list[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise UsageError(f"{what} needs a comma-separated list, got {text!r}")
    return items


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return check_batch_sizes(int(part) for part in parse_list(text, "--batch-size"))
    except ValueError:
        raise UsageError(f"--batch-size needs positive integers, e.g. 1,8,64; got {text!r}") from None


def best_rows(results: list[dict]) -> list[dict]:
    """The fastest batch size of each (backend, model file)."""
    best: dict[tuple, dict] = {}
    for row in results:
        key = (row["backend"], row["model"])
        if key not in best or row["images_per_s"] > best[key]["images_per_s"]:
            best[key] = row
    return sorted(best.values(), key=lambda r: -r["images_per_s"])


def bench_generate(model: str | Path, fmt: str, n: int) -> dict:
    """End-to-end `dcgan-rt generate` throughput (latents -> backend -> encode -> files)."""
    from dcgan_rt.pipeline import GenerateRequest, generate

    with tempfile.TemporaryDirectory(prefix="dcgan-rt-bench-") as tmp:
        start = time.perf_counter()
        result = generate(GenerateRequest(model=model, out=Path(tmp) / "out", n=n, format=fmt))
        wall = time.perf_counter() - start
    return {"format": fmt, "images": result.generated, "backend": result.backend, "batch_size": result.batch_size,
            "images_per_s": result.images_per_second, "wall_s": wall, "bytes_written": result.bytes_written}


def _int8_ceilings(measurements: list[dict], flops: int) -> dict:
    """{runtime: the faster of its int8 GEMM measurements, as ops/s and images/s}."""
    found = {}
    for runtime in {name for m in measurements for name in m}:
        rates = [m[runtime] for m in measurements if runtime in m]
        best = max(rates, key=lambda r: r["ops_per_s"])
        found[runtime] = {**best, "images_per_s": best["ops_per_s"] / flops,
                          "all_measurements": [r["ops_per_s"] for r in rates]}
    return found


def _share(row: dict, ceiling: dict) -> float:
    if row["device"] == "gpu" and "gpu" in ceiling:
        rates = ceiling["gpu"]["images_per_s"]
        return row["images_per_s"] / rates.get(row["precision"], rates["fp32"])
    return row["images_per_s"] / ceiling["cpu"]["images_per_s"]


def _pipelined_rate(backend, z: np.ndarray, warmup: int, repeats: int) -> float:
    """images/s with the backend's own batches-in-flight loop (map_images)."""
    for _ in backend.map_images([z] * max(warmup, 1)):
        pass
    start = time.perf_counter()
    for _ in backend.map_images([z] * max(repeats, 2)):
        pass
    return len(z) * max(repeats, 2) / (time.perf_counter() - start)


def _base_map_images():
    from dcgan_rt.backends import Backend

    return Backend.map_images


def _artifacts(resolved: ModelPath) -> list[ModelPath]:
    """MODEL, then the files `dcgan-rt export` wrote beside it (fp16 / uint8 / engine)."""
    found = [resolved]
    if resolved.kind == "safetensors":
        folder, stem = resolved.path.parent / "export", "generator"
    elif resolved.kind == "onnx":
        folder, stem = resolved.path.parent, resolved.path.name.split(".")[0]
    else:
        return found
    if folder.is_dir():
        for path in sorted(folder.glob(f"{stem}*.onnx")) + sorted(folder.glob(f"{stem}*.engine")):
            if path.resolve() != resolved.path.resolve():
                found.append(resolve_model(path))
    return found


def _describe(artifact: ModelPath) -> dict:
    """{"config", "precision", "output"} of an artifact, without running it."""
    if artifact.kind == "onnx":
        from dcgan_rt.onnx_card import output_kind, read_onnx_card

        card, io = read_onnx_card(artifact.path)
        return {"config": card.model_config, "precision": io["precision"], "output": output_kind(io)}
    if artifact.kind == "engine":
        from dcgan_rt.engine_sidecar import read_sidecar
        from dcgan_rt.onnx_card import output_kind

        sidecar = read_sidecar(artifact.path)
        return {"config": sidecar.model_card.model_config, "precision": sidecar.precision,
                "output": output_kind(sidecar.io)}
    from dcgan_rt.model_card import ModelCard

    card = ModelCard.load(artifact.card_path)
    return {"config": card.model_config, "precision": "fp32", "output": FLOAT_NCHW}


def _builder(name: str, path: Path, threads: int | None) -> Callable[[], object]:
    # torch returns floats here, as every other backend's float model does
    # providers "cpu": the plain onnxruntime row is the CPU one; its GPU providers have rows of their own
    return lambda: BACKENDS[name].build(path, BuildOptions(threads=threads, uint8=False, providers="cpu"))


def _cuda() -> bool:
    from dcgan_rt.backends.registry import cuda_driver

    if not cuda_driver():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return None

