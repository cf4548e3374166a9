"""What this machine offers dcgan-rt: Python, torch + CUDA, ONNX Runtime, TensorRT, the GPU,
and which backends of dcgan_rt.backends.registry can run here.

Core tier; every optional package is imported inside `environment_report`, and a
missing or broken one is reported, never raised: `dcgan-rt doctor` must work on
the installs it is meant to diagnose.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from dcgan_rt import __version__


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _broken(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"installed but does not load ({type(exc).__name__}{': ' + first if first else ''})"


def _distribution(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report() -> dict[str, dict[str, Any]]:
    """{section: {field: value}}, JSON-able."""
    report: dict[str, dict[str, Any]] = {
        "dcgan-rt": {"version": __version__, "python": sys.version.split()[0], "platform": platform.platform()},
    }

    import numpy

    report["numpy"] = {"version": numpy.__version__}

    try:
        import torch

        t: dict[str, Any] = {"version": torch.__version__, "built for CUDA": torch.version.cuda or "no (CPU build)"}
        t["CUDA available"] = torch.cuda.is_available()
        if t["CUDA available"]:
            major, minor = torch.cuda.get_device_capability(0)
            t["device"] = f"{torch.cuda.get_device_name(0)} (compute capability {major}.{minor})"
    except ImportError:
        t = {"version": "not installed"}
    except Exception as exc:
        t = {"version": _broken(exc)}
    report["torch"] = t

    try:
        import onnx

        report["onnx"] = {"version": onnx.__version__, "newest opset": onnx.defs.onnx_opset_version()}
    except ImportError:
        report["onnx"] = {"version": "not installed"}

    try:
        import onnxruntime as ort

        report["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers(),
                                 "device": ort.get_device()}
    except ImportError:
        report["onnxruntime"] = {"version": "not installed (pip install 'dcgan-rt[cpu]', or [gpu])"}
    except Exception as exc:
        report["onnxruntime"] = {"version": _broken(exc)}

    both = [d for d in ("onnxruntime", "onnxruntime-gpu") if _distribution(d)]
    if len(both) == 2:
        report["onnxruntime"]["conflict"] = (
            "onnxruntime and onnxruntime-gpu are both installed and overwrite each other's files: "
            "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install 'dcgan-rt[gpu]' (or [cpu])")

    try:
        from cuda.bindings import runtime as cudart  # noqa: F401

        report["cuda-python"] = {"version": _distribution("cuda-bindings") or _distribution("cuda-python") or "?"}
    except ImportError:
        report["cuda-python"] = {"version": "not installed (the tensorrt backend needs it: pip install 'dcgan-rt[gpu]')"}
    except Exception as exc:
        report["cuda-python"] = {"version": _broken(exc)}

    try:
        import tensorrt

        report["tensorrt"] = {"version": tensorrt.__version__}
    except ImportError:
        report["tensorrt"] = {"version": "not installed (pip install 'dcgan-rt[gpu]')"}
    except Exception as exc:
        report["tensorrt"] = {"version": _broken(exc)}

    from dcgan_rt.gpu import find_gpu

    gpu, reason = find_gpu()
    if gpu is None:
        report["gpu"] = {"device": f"none ({reason})"}
    else:
        report["gpu"] = {"device": gpu.name, "compute capability": gpu.compute_capability,
                         "memory": f"{gpu.total_memory / 2**30:.1f} GiB"}

    from dcgan_rt.backends.registry import status

    report["backends"] = status()  # the table select_backend and bench use: what runs here, or why not
    return report
