"""The steps of benchmarks/device_check.py: each `step(ctx, seconds) -> dict` measures one thing.

Steps that run `dcgan-rt` or pytest do so in a subprocess with a timeout; the rest
run in this process (the runner's alarm bounds them). Sizes come from SIZES: "gpu"
for the real check, "cpu" for the rehearsal the test suite runs. A result dict's
"headline" is the one line the summary prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELEBA_IMAGES = 202_599
SIZES = {
    "gpu": dict(pytest_s=90, train_steps=200, train_cpu_steps=20, parity_n=256, batch_sizes=[64, 256, 1024, 4096],
                repeats=20, generate_npy=20_000, generate_png=20_000, face_steps=150, face_images=512,
                encode_images=2048),
    "cpu": dict(pytest_s=60, train_steps=2, train_cpu_steps=2, parity_n=16, batch_sizes=[8, 32], repeats=3,
                generate_npy=64, generate_png=64, face_steps=2, face_images=40, encode_images=64),
}
DEFAULT_CFG = dict(z_dim=100, img_resolution=64, img_channels=3, g_width=64, code_dim=0)  # as dcgan-rt bench


def _env(ctx) -> dict:
    return {**os.environ, "DCGAN_RT_OFFLINE": "1", "DCGAN_RT_CACHE": str(ctx.work / "cache"),
            "NO_COLOR": "1", "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}


def _run(ctx, cmd: list[str], timeout: float, name: str) -> dict:
    """A subprocess with a timeout; its output goes to work/<name>.log. {rc, wall_s, tail}."""
    log = ctx.work / f"{name}.log"
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ctx.work, env=_env(ctx), capture_output=True, text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        text = "".join(x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
    log.write_text(text)
    # The log stays on the machine; its tail travels in the report.
    return {"rc": rc, "wall_s": round(time.monotonic() - start, 2), "tail": text.strip().splitlines()[-25:],
            "log": str(log)}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "dcgan_rt.cli.main", *map(str, args)]


def environment(ctx, seconds) -> dict:
    import torch

    from dcgan_rt.bench import machine_info

    info = machine_info()
    info["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["torch"].update(device=props.name, compute_capability=f"{props.major}.{props.minor}",
                             memory_gib=round(props.total_memory / 2**30, 1), devices=torch.cuda.device_count(),
                             nccl=_nccl_version(torch))
    elif not ctx.cpu:
        info["status"] = "failed"
        info["headline"] = "this PyTorch sees no CUDA GPU"
        return info
    gpu = info["torch"].get("device", "no GPU")
    info["headline"] = f"{gpu}, torch {torch.__version__} (CUDA {torch.version.cuda}), {info['usable_cores']} cores"
    return info


def _nccl_version(torch) -> str | None:
    try:
        version = torch.cuda.nccl.version()
    except Exception:  # a build without NCCL
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def gpu_tests(ctx, seconds) -> dict:
    # The rehearsal collects one file: all of tests/ would cost the CPU machine a minute of imports.
    target = ["tests/test_torch_backend.py"] if ctx.cpu else ["tests"]
    junit = ctx.work / "gpu-tests.xml"
    # A hung test would cost the whole step its counts (junit is written at the end): pytest-timeout,
    # where installed, ends that one test instead.
    per_test = ["--timeout", "60"] if _has("pytest_timeout") else []
    result = _run(ctx, [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
                        *per_test, f"--junitxml={junit}", "--rootdir", str(REPO), *[str(REPO / t) for t in target]],
                  ctx.timeout(seconds), "gpu-tests")
    counts = _junit_counts(junit) if junit.is_file() else {}
    result.update(counts)
    failed = counts.get("failures", 0) + counts.get("errors", 0)
    result["headline"] = (f"{counts.get('passed', 0)} passed, {failed} failed, {counts.get('skipped', 0)} skipped"
                          if counts else f"pytest ended with {result['rc']}")
    if result["rc"] not in (0, 5) or failed:  # 5: nothing collected
        result["status"] = "failed"
    return result


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _junit_counts(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = []
    for case in suite.iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            failed.append({"test": f"{case.get('classname')}::{case.get('name')}",
                           "message": (bad.get("message") or "")[:400]})
    counts["failed_tests"] = failed
    return counts


def _train(ctx, name: str, device: str, steps: int, timeout: float, *extra) -> dict:
    out = ctx.work / name
    result = _run(ctx, _cli("train", "--steps", steps, "--device", device, "--out", out, *extra), timeout, name)
    rows = []
    for metrics in out.glob("*/metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steady = [r["images_per_s"] for r in rows[1:]] or [r["images_per_s"] for r in rows]
    result["images_per_s"] = float(np.median(steady)) if steady else None
    result["steps"] = steps
    configs = list(out.glob("*/train_config.json"))
    if configs:
        opts = json.loads(configs[0].read_text())
        opts = opts.get("options", opts)
        result["options"] = {k: opts.get(k) for k in ("amp", "channels_last", "batch_size", "img_resolution",
                                                      "img_channels", "r1_gamma", "data") if k in opts}
    if result["rc"] != 0 or result["images_per_s"] is None:
        result["status"] = "failed"
    return result


def train_default(ctx, seconds) -> dict:
    device = _train(ctx, "train-device", ctx.device, ctx.sizes["train_steps"], ctx.timeout(seconds * 0.6))
    # In the rehearsal the device is the CPU: a second identical run would only cost the test suite time.
    cpu = device if ctx.cpu else _train(ctx, "train-cpu", "cpu", ctx.sizes["train_cpu_steps"],
                                        ctx.timeout(seconds * 0.4))
    result = {"device": device, "cpu": cpu}
    if device.get("images_per_s") and cpu.get("images_per_s"):
        result["ratio"] = device["images_per_s"] / cpu["images_per_s"]
        result["headline"] = (f"{ctx.device} {device['images_per_s']:,.0f} images/s, CPU {cpu['images_per_s']:,.0f} "
                              f"images/s ({result['ratio']:.1f}x)")
    if "status" in device or "status" in cpu:
        result["status"] = "failed"
    return result


def _default_model(ctx) -> Path:
    """The default 64x64 RGB generator shape (random DCGAN init, real BatchNorm statistics), saved once."""
    if "model" in ctx.shared:
        return ctx.shared["model"]
    import torch

    from dcgan_rt.config import ModelConfig
    from dcgan_rt.model_card import ModelCard
    from dcgan_rt.train.networks import build_generator
    from dcgan_rt.train.release import save_generator

    cfg = ModelConfig(**DEFAULT_CFG)
    torch.manual_seed(0)
    g = build_generator(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(64, cfg.z_dim))
    run = ctx.work / "model"
    run.mkdir(parents=True, exist_ok=True)
    save_generator(g.eval(), ModelCard(cfg, dataset="random-init"), run)
    ctx.shared["model"] = run
    return run


def parity(ctx, seconds) -> dict:
    import torch

    from dcgan_rt.backends.torch import build_torch_backend
    from dcgan_rt.export.parity import BOUNDS, errors, reference_images
    from dcgan_rt.latents import latent_range
    from dcgan_rt.onnx_card import FLOAT_NCHW
    from dcgan_rt.train.release import load_generator

    run = _default_model(ctx)
    g, card = load_generator(run)
    z = latent_range(1, 0, ctx.sizes["parity_n"], card.model_config.z_dim)
    reference = reference_images(g, z)  # PyTorch fp32 on the CPU
    rows = {}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if not ctx.cpu:
        with torch.no_grad():
            plain = g.to("cuda")(torch.from_numpy(z).cuda()).cpu().numpy()
        rows["plain generator, fp32 (TF32 off)"] = (errors(FLOAT_NCHW, plain, reference), BOUNDS[("fp32", FLOAT_NCHW)])
    for precision in ("fp32",) if ctx.cpu else ("fp32", "fp16"):
        with build_torch_backend(run, uint8=False, precision=precision) as backend:
            got = backend(z)
            rows[f"torch backend ({backend.device}), {precision}"] = (errors(FLOAT_NCHW, got, reference),
                                                                      BOUNDS[(precision, FLOAT_NCHW)])
    result = {"images": len(z), "rows": {}}
    for label, ((max_abs, mean_abs), bound) in rows.items():
        ok = max_abs <= bound.max_abs and (bound.mean_abs is None or mean_abs <= bound.mean_abs)
        result["rows"][label] = {"max_abs": max_abs, "mean_abs": mean_abs, "bound": bound.describe(), "pass": ok}
    result["headline"] = "; ".join(f"{k}: max {v['max_abs']:.1e} {'pass' if v['pass'] else 'FAIL'}"
                                   for k, v in result["rows"].items())
    if not all(v["pass"] for v in result["rows"].values()):
        result["status"] = "failed"
    return result


def throughput(ctx, seconds) -> dict:
    from dcgan_rt.backends.torch import build_torch_backend
    from dcgan_rt.bench import generator_flops, gpu_matmul_ceiling, matmul_ceiling, summarize, time_calls
    from dcgan_rt.config import ModelConfig
    from dcgan_rt.latents import latent_range

    run = _default_model(ctx)
    flops = generator_flops(ModelConfig(**DEFAULT_CFG))
    if ctx.cpu:
        ceiling = {"fp32": matmul_ceiling(n=512, repeats=2)["flops_per_s"]}
    else:
        measured = gpu_matmul_ceiling()
        ceiling = measured["flops_per_s"]
    result = {"flops_per_image": flops, "ceiling_flops_per_s": ceiling, "rows": [],
              "rates": "images_per_s: backend(z), copies included; device_only: one CUDA graph replay; "
                       "TFLOP/s and shares use device_only where measured"}
    for precision in ("fp32",) if ctx.cpu else ("fp32", "fp16"):
        with build_torch_backend(run, uint8=False, precision=precision) as backend:
            for batch in ctx.sizes["batch_sizes"]:
                z = latent_range(0, 0, batch, DEFAULT_CFG["z_dim"])
                row = summarize(time_calls(lambda: backend(z), 2, ctx.sizes["repeats"]), batch)  # noqa: B023
                row.update(precision=precision, batch_size=batch)
                if hasattr(backend, "replay_only"):  # the GPU alone: one graph replay, no copies
                    times = time_calls(lambda: backend.replay_only(batch), 2, ctx.sizes["repeats"])  # noqa: B023
                    row["device_only_images_per_s"] = batch / float(np.median(times))
                rate = row.get("device_only_images_per_s", row["images_per_s"])
                row["tflops"] = rate * flops / 1e12
                row["share_of_fp16_ceiling"] = rate * flops / ceiling.get("fp16", ceiling["fp32"])
                if "bf16" in ceiling:
                    row["share_of_bf16_ceiling"] = rate * flops / ceiling["bf16"]
                result["rows"].append(row)
        with build_torch_backend(run, precision=precision) as backend:  # uint8, two batches in flight
            z = latent_range(0, 0, ctx.sizes["batch_sizes"][-1], DEFAULT_CFG["z_dim"])
            for _ in backend.map_images([z] * 2):
                pass
            start = time.perf_counter()
            for _ in backend.map_images([z] * ctx.sizes["repeats"]):
                pass
            result[f"pipelined_uint8_images_per_s_{precision}"] = len(z) * ctx.sizes["repeats"] / (
                time.perf_counter() - start)
    best = max(result["rows"], key=lambda r: r.get("device_only_images_per_s", r["images_per_s"]))
    best_rate = best.get("device_only_images_per_s", best["images_per_s"])
    result["headline"] = (f"best {best_rate:,.0f} images/s ({best['precision']}, batch {best['batch_size']}, "
                          f"{best['tflops']:.1f} TFLOP/s, {100 * best['share_of_fp16_ceiling']:.0f}% of the "
                          f"{'fp16' if 'fp16' in ceiling else 'fp32'} matmul ceiling)")
    return result


def generate_end_to_end(ctx, seconds) -> dict:
    from dcgan_rt.bench import bench_generate
    from dcgan_rt.backends.torch import build_torch_backend
    from dcgan_rt.images import encode_pngs
    from dcgan_rt.latents import latent_range

    run = _default_model(ctx)
    with build_torch_backend(run) as backend:
        pixels = backend.images(latent_range(0, 0, ctx.sizes["encode_images"], DEFAULT_CFG["z_dim"]))
    start = time.perf_counter()
    encode_pngs(pixels)
    one_core = len(pixels) / (time.perf_counter() - start)
    cores = len(os.sched_getaffinity(0))
    result = {"png_encode_one_core_images_per_s": one_core, "cores": cores,
              "png_encode_limit_images_per_s": one_core * cores, "formats": {}}
    for fmt, n in (("npy", ctx.sizes["generate_npy"]), ("png", ctx.sizes["generate_png"])):
        result["formats"][fmt] = bench_generate(run, fmt, n)
    png = result["formats"]["png"]["images_per_s"]
    result["png_share_of_encode_limit"] = png / result["png_encode_limit_images_per_s"]
    result["headline"] = (f"npy {result['formats']['npy']['images_per_s']:,.0f} images/s, png {png:,.0f} images/s "
                          f"({100 * result['png_share_of_encode_limit']:.0f}% of the {cores}-core encode limit "
                          f"{result['png_encode_limit_images_per_s']:,.0f}); backend "
                          f"{result['formats']['png']['backend']}")
    return result


def torchrun_step(ctx, seconds) -> dict:
    def launch(nproc: int, timeout: float) -> dict:
        name = f"torchrun-{nproc}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "dcgan_rt.cli.main", "train", "--steps", "1", "--device", ctx.device, "--out",
               str(ctx.work / name)]
        result = _run(ctx, cmd, timeout, name)
        text = (ctx.work / f"{name}.log").read_text()
        result["backend"] = "nccl" if ctx.device == "cuda" else "gloo"
        result["nccl_in_log"] = "NCCL" in text
        return result

    one = launch(1, ctx.timeout(seconds * 0.6))
    result = {"one_process": one}
    if not ctx.cpu and ctx.remaining() > 60:
        # Two ranks on one GPU: NCCL refuses duplicate devices in most versions; record what happens.
        result["two_processes_one_gpu"] = launch(2, ctx.timeout(seconds * 0.4))
    result["headline"] = f"1 process ({one['backend']}): exit {one['rc']} in {one['wall_s']} s" + (
        f"; 2 processes on one GPU: exit {result['two_processes_one_gpu']['rc']}"
        if "two_processes_one_gpu" in result else "")
    if one["rc"] != 0:
        result["status"] = "failed"
    return result


def _synthetic_faces(folder: Path, count: int) -> Path:
    """Colour 64x64 images: a skin-toned ellipse on a coloured background, varied per image."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        bg = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGB", (64, 64), bg)
        draw = ImageDraw.Draw(image)
        cx, cy, rx, ry = 32 + rng.integers(-6, 7), 34 + rng.integers(-6, 7), rng.integers(14, 20), rng.integers(18, 25)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(v) for v in rng.integers(120, 230, 3)))
        for ex in (-7, 7):
            draw.ellipse([cx + ex - 2, cy - 6, cx + ex + 2, cy - 2], fill=(30, 30, 30))
        draw.line([cx - 6, cy + 9, cx + 6, cy + 9], fill=(120, 40, 40), width=2)
        image.save(folder / f"{i:05d}.png")
    return folder


def celeba_length() -> tuple[int, str]:
    """Images CelebA's default training length shows the networks, and the rule used
    (dcgan_rt.train.defaults: 80 epochs within an image budget)."""
    from dcgan_rt.train.defaults import resolve_for_data
    from dcgan_rt.train.options import TrainOptions

    opts = resolve_for_data(TrainOptions(img_resolution=64, img_channels=3), CELEBA_IMAGES)
    steps = opts.total_steps(CELEBA_IMAGES // opts.batch_size)
    rule = f"{opts.kimg:g} kimg" if opts.kimg is not None else f"{opts.epochs} epochs"
    return steps * opts.batch_size, f"default length: {rule} ({steps} steps x batch {opts.batch_size})"


def face_recipe(ctx, seconds) -> dict:
    data = ctx.face_data or str(_synthetic_faces(ctx.work / "faces", ctx.sizes["face_images"]))
    result = _train(ctx, "train-faces", ctx.device, ctx.sizes["face_steps"], ctx.timeout(seconds), "--data", data,
                    "--img-resolution", "64", "--img-channels", "3")
    result["data"] = data if ctx.face_data else f"synthetic: {ctx.sizes['face_images']} colour 64x64 images"
    images, rule = celeba_length()
    result["celeba_images"], result["celeba_rule"] = images, rule
    if result.get("images_per_s"):
        result["celeba_hours"] = images / result["images_per_s"] / 3600
        result["headline"] = (f"{result['images_per_s']:,.0f} images/s on {result['data']}; CelebA's default length "
                              f"({images:,} images, {rule}) would take {result['celeba_hours']:.1f} h")
    return result


STEPS = [
    ("a", "environment", environment, 30),
    ("b", "gpu-marked tests", gpu_tests, SIZES["gpu"]["pytest_s"]),
    ("c", "default recipe: CUDA (AMP, channels_last) vs CPU", train_default, 70),
    ("d", "CUDA vs CPU generator parity", parity, 30),
    ("e", "torch-CUDA model-only throughput vs matmul ceiling", throughput, 40),
    ("f", "generate end to end (npy, PNG) vs PNG-encode limit", generate_end_to_end, 50),
    ("g", "torchrun NCCL training step", torchrun_step, 60),
    ("h", "face recipe 64 px RGB", face_recipe, 45),
]
