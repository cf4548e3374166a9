"""Helpers for the export-stage tests: the CLI in-process, a plan file with a real sidecar,
and a foreign ONNX model.

The "plan" is random bytes: everything that reads an engine checks the sidecar
before TensorRT ever sees the plan, and that is what these files exercise.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import onnx
from onnx import TensorProto, helper

from dcgan_rt.digest import sha256_bytes
from dcgan_rt.engine_sidecar import EngineSidecar, write_sidecar
from dcgan_rt.model_card import ModelCard
from dcgan_rt.onnx_card import UINT8_NHWC, io_contract


def invoke(*args) -> SimpleNamespace:
    """The CLI in this process (typer's CliRunner), shaped like subprocess.CompletedProcess: the
    same code path as the console script without paying for a second interpreter and torch import."""
    from typer.testing import CliRunner

    from dcgan_rt.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def blocker(tmp_path: Path, *modules: str) -> dict:
    """Environment for a subprocess in which importing `modules` fails, as if not installed."""
    site = tmp_path / "blocked-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        BLOCKED = {list(modules)!r}
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
                return None
        sys.meta_path.insert(0, _Blocker())
    """))
    return {"PYTHONPATH": str(site)}


def blocked_torch_env(root: Path) -> dict:
    """Environment whose PYTHONPATH shadows torch with a package that refuses to import."""
    (root / "torch").mkdir(parents=True, exist_ok=True)
    (root / "torch" / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    return {"PYTHONPATH": str(root)}


def write_fake_engine(path: Path, card: ModelCard, precision: str = "fp16", output: str = UINT8_NHWC,
                      tensorrt_version: str = "10.9.0.34", compute_capability: str = "9.0") -> EngineSidecar:
    plan = os.urandom(4096)
    path.write_bytes(plan)
    sidecar = EngineSidecar(
        model_card=card, io=io_contract(card, output, precision), precision=precision,
        tensorrt_version=tensorrt_version, gpu_name="NVIDIA H100 80GB HBM3", compute_capability=compute_capability,
        batch_min=1, batch_opt=256, batch_max=256, onnx_file="generator.fp16.uint8.onnx", onnx_sha256="0" * 64,
        plan_sha256=sha256_bytes(plan), plan_bytes=len(plan), workspace_bytes=2 << 30,
    )
    write_sidecar(path, sidecar)
    return sidecar


def foreign_onnx_model() -> onnx.ModelProto:
    """A valid ONNX model of some other network: x float32 [N, 4] -> Relu -> y."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "not_a_generator",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    return model


def copy_run(src, dst):
    """A copy of run `src`'s release artifact (generator.safetensors + .json) as run `dst`."""
    dst.mkdir(parents=True)
    for name in ("generator.safetensors", "generator.json"):
        shutil.copy(src / name, dst / name)
    return dst
