"""Is `--backend auto` the fastest CPU backend installed for a file? Every CPU row of the
backend registry against auto's pick, interleaved, on the same file.

Run:  python benchmarks/bench_auto.py RUN_DIR/export          (every .onnx in the folder)
      python benchmarks/bench_auto.py generator.onnx --rounds 7
      python benchmarks/bench_auto.py generator.onnx --file-graph   (+ ONNX Runtime on the file's
                                                                     own graph, without ort_graph's rewrite)

For each ONNX file: every CPU backend of dcgan_rt.backends.registry that is installed
(built exactly as generate builds it) is timed at batch 32, 64 and 128, round after round,
interleaved, so a busy moment on a shared machine hits every backend alike; per backend
and batch the median over rounds of (batch / median call time) counts. The float32
matmul ceiling (dcgan_rt.bench.matmul_ceiling) is measured before and after; shares are of
the faster one. Last line per file: what auto picks and its best rate as a share of the
fastest backend's (docs/performance.md, "What auto picks", records the figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from dcgan_rt.backends import select_backend
    from dcgan_rt.backends.registry import BACKENDS, backends_for
    from dcgan_rt.bench import generator_flops, matmul_ceiling, time_calls
    from dcgan_rt.latents import latent_range

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx file, or a folder of them (a run's export/)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument("--file-graph", action="store_true",
                        help="also time ONNX Runtime on the file's graph as written (phase interleaves as "
                             "DepthToSpace), beside the Concat form its CPU sessions get")
    args = parser.parse_args()
    files = sorted(args.model.glob("*.onnx")) if args.model.is_dir() else [args.model]
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    ceilings = [matmul_ceiling()]
    rows = []
    for path in files:
        names = [s.name for s in backends_for("onnx") if s.device == "cpu" and s.unavailable() is None]
        backends = {name: select_backend(path, name) for name in names}
        if args.file_graph and "onnxruntime" in backends:
            backends["ort-file-graph"] = file_graph_session(path)
        auto = select_backend(path)
        auto.close()
        cfg = backends[names[0]].card.model_config
        rates: dict[tuple[str, int], list[float]] = {(n, b): [] for n in backends for b in sizes}
        for _ in range(args.rounds):
            for batch in sizes:
                z = latent_range(0, 0, batch, cfg.z_dim)
                for name, backend in backends.items():
                    times = time_calls(lambda b=backend: b(z), 2, 8)
                    rates[(name, batch)].append(batch / float(np.median(times)))
        for backend in backends.values():
            backend.close()
        rows.append((path, auto, cfg, {k: float(np.median(v)) for k, v in rates.items()}, rates))
    ceilings.append(matmul_ceiling())
    ceiling = max(ceilings, key=lambda c: c["flops_per_s"])
    measured = ", ".join(f"{c['flops_per_s'] / 1e9:.0f}" for c in ceilings)
    print(f"ceiling: {ceiling['flops_per_s'] / 1e9:.0f} GFLOP/s ({ceiling['source']}; {measured} measured)")
    for path, auto, cfg, median, rates in rows:
        per_image = ceiling["flops_per_s"] / generator_flops(cfg)
        print(f"\n{path.name} ({auto.precision}, {auto.output}); ceiling {per_image:.0f} images/s")
        for (name, batch), rate in median.items():
            print(f"  {name:14s} batch {batch:4d}: {rate:7.0f} images/s ({rate / per_image:4.0%})  "
                  f"rounds {', '.join(f'{r:.0f}' for r in rates[(name, batch)])}")
        best = {name: max(r for (n, _), r in median.items() if n == name) for name, _ in median
                if name in BACKENDS}
        fastest = max(best, key=best.get)
        print(f"  auto picks {auto.name}: {best[auto.name] / best[fastest]:.0%} of the fastest ({fastest}, "
              f"{best[fastest]:.0f} images/s = {best[fastest] / per_image:.0%} of the ceiling)")


def file_graph_session(path: Path):
    """The ONNX Runtime backend as generate builds it, but on the file's graph as written."""
    from dcgan_rt.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, providers="cpu", concat_interleave=False)


if __name__ == "__main__":
    main()
