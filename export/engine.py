"""Build a TensorRT engine from an exported ONNX file, and run one for the parity check.

Export tier; `tensorrt` is imported lazily. The build follows the current Python
API (TensorRT 10.x and 11.x): Builder -> strongly typed network -> OnnxParser
(every parser error reported) -> builder config with a workspace limit and one
optimization profile covering every input (`z`, and a conditional model's `label`:
batch min 1, opt = max = --max-batch; IOptimizationProfile.set_shape per input
tensor, the same batch range for each) -> timing cache ->
build_serialized_network. The plan is written as is, plus its JSON sidecar
(dcgan_rt.engine_sidecar).

Precision lives in the ONNX file: TensorRT 11 removed the FP16 builder flag and
always builds strongly typed networks, and on 10.x we ask for a strongly typed
network too (NetworkDefinitionCreationFlag.STRONGLY_TYPED), so the fp16 variant's
Cast/fp16 nodes decide and both versions build the same thing. Only on a
TensorRT without that flag would the FP16 builder flag be set for fp16 models.
int8 is explicit quantization: the int8 variant's QuantizeLinear/DequantizeLinear
pairs (symmetric, zero points 0, as TensorRT requires) carry the scales, and a
strongly typed network runs each quantized convolution in int8 (TensorRT 10.1
deprecated implicit calibration, 11 removed the INT8 flag); without strong typing
the INT8 builder flag is set instead.
TF32 is switched off so an fp32 engine stays within the fp32 parity bound.

The timing cache (kernel timings, reused to make rebuilds fast) is one file per
TensorRT version and GPU architecture under $DCGAN_RT_CACHE (default
~/.cache/dcgan-rt, dcgan_rt.cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcgan_rt.atomic import write_bytes
from dcgan_rt.digest import sha256_bytes, sha256_file
from dcgan_rt.engine_sidecar import EngineSidecar, write_sidecar
from dcgan_rt.errors import DcganRtError
from dcgan_rt.gpu import find_gpu
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import io_contract

WORKSPACE_BYTES = 2 << 30


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built and checked here (one line), or None if it can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'dcgan-rt[gpu]')"
    except Exception as exc:  # a broken install raises OSError / RuntimeError from its libraries
        return f"TensorRT is installed but does not load ({type(exc).__name__}: {exc})"
    gpu, reason = find_gpu()
    if gpu is None:
        return reason
    from dcgan_rt.backends.cuda_memory import cudart
    from dcgan_rt.errors import MissingDependencyError

    try:
        cudart()  # the engine's parity check runs it through the tensorrt backend's cuda-python buffers
    except MissingDependencyError:
        return "cuda-python is not installed (pip install 'dcgan-rt[gpu]'); the engine's parity check needs it"
    return None


def timing_cache_path(tensorrt_version: str, compute_capability: str) -> Path:
    from dcgan_rt.cache import cache_root

    return cache_root() / f"tensorrt-{tensorrt_version}-sm{compute_capability.replace('.', '')}.timing-cache"


def build_engine(onnx_path: str | Path, engine_path: str | Path, card: ModelCard, precision: str, output: str,
                 max_batch: int = 1024, workspace_bytes: int = WORKSPACE_BYTES) -> EngineSidecar:
    """Build `engine_path` (+ sidecar) from `onnx_path`; returns the sidecar written."""
    import tensorrt as trt

    from dcgan_rt.export.preflight import check_max_batch

    check_max_batch(max_batch)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    gpu, reason = find_gpu()
    if gpu is None:
        raise DcganRtError(f"cannot build a TensorRT engine: {reason}")

    logger = trt.Logger(trt.Logger.WARNING)  # its warnings (e.g. on precision) reach the user
    builder = trt.Builder(logger)
    # 10.x: ask for strong typing; 11.x: always strongly typed (the flag is kept, and ignored).
    strongly_typed_flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED", None)
    strongly_typed = strongly_typed_flag is not None or _major(trt.__version__) >= 11
    network = builder.create_network(1 << int(strongly_typed_flag) if strongly_typed_flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DcganRtError(
            f"TensorRT's ONNX parser rejected {onnx_path.name} ({len(errors)} error(s)): " + " | ".join(errors)
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if not strongly_typed:  # only a TensorRT without strong typing takes precision from builder flags
        flag = {"fp16": "FP16", "int8": "INT8"}.get(precision)
        if flag and hasattr(trt.BuilderFlag, flag):
            config.set_flag(getattr(trt.BuilderFlag, flag))
    config.add_optimization_profile(batch_profile(builder.create_optimization_profile(), card, max_batch))

    cache_file = timing_cache_path(trt.__version__, gpu.compute_capability)
    cache = None
    if cache_file.is_file():
        try:
            cache = config.create_timing_cache(cache_file.read_bytes())
        except Exception:  # a damaged cache file is only a slower build
            cache = None
        if cache is not None and not config.set_timing_cache(cache, ignore_mismatch=False):
            cache = None
    if cache is None:
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise DcganRtError(f"TensorRT could not build an engine from {onnx_path.name} (see the messages above)")
    data = bytes(plan)
    write_bytes(engine_path, data)

    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    except OSError:
        pass  # a read-only cache directory only costs build time next time

    sidecar = EngineSidecar(
        model_card=card, io=io_contract(card, output, precision), precision=precision,
        tensorrt_version=trt.__version__, gpu_name=gpu.name, compute_capability=gpu.compute_capability,
        batch_min=1, batch_opt=max_batch, batch_max=max_batch,
        onnx_file=onnx_path.name, onnx_sha256=sha256_file(onnx_path),
        plan_sha256=sha256_bytes(data), plan_bytes=len(data),
        workspace_bytes=workspace_bytes, strongly_typed=strongly_typed,
    )
    write_sidecar(engine_path, sidecar)
    return sidecar


def batch_profile(profile, card: ModelCard, max_batch: int):
    """One optimisation profile for every input the card lists (batch 1..max_batch, the
    other dimensions fixed): z [N, z_dim], and label [N] or [N, A] for a conditional model."""
    for spec in card.inputs:
        tail = tuple(spec["shape"][1:])
        profile.set_shape(spec["name"], (1, *tail), (max_batch, *tail), (max_batch, *tail))
    return profile


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _parser_error(error) -> str:
    """One line per ONNX parser error: node, operator, code and description where available."""
    try:
        where = f"node {error.node_name() or error.node()} ({error.node_operator()}): " if error.node() >= 0 else ""
        return f"{where}{error.code()}: {error.desc()}".strip()
    except AttributeError:  # older bindings lack node_name / node_operator
        return str(error).strip()


def engine_runner(engine_path: str | Path, device: int = 0):
    """z (numpy float32), or a Batch with labels -> the engine's output, through the very backend `generate --backend
    tensorrt` runs (dcgan_rt.backends.tensorrt.TensorRTBackend: its buffers, stream and
    two-slot pipeline), in chunks of the engine's maximum batch. `run.backend` is it."""
    from dcgan_rt.backends.tensorrt import TensorRTBackend
    from dcgan_rt.batch import as_batch

    backend = TensorRTBackend(engine_path, device=device)

    def run(inputs) -> np.ndarray:
        batch = as_batch(inputs)
        step = backend.max_batch or len(batch)
        return np.concatenate([backend(batch.take(s, s + step)) for s in range(0, len(batch), step)])

    run.backend = backend
    return run
