"""Which pip extra brings what, and the one-line error for a command whose extra is missing.

Core tier: standard library only. The runtime install (`dcgan-rt[cpu]`, `[openvino]`,
`[gpu]`) has no PyTorch (DESIGN §8); `train`, `export`, `evaluate` and running a
generator.safetensors need `[train]`. They call `require_train` before importing
anything from the training or export tier, so a runtime install answers with one
line saying what to install instead of a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from dcgan_rt.errors import MissingDependencyError

TRAIN_MODULES = ("torch", "torchvision")


def missing_train_module() -> str | None:
    """The first [train] module that is not importable here, or None."""
    return next((name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None), None)


def require_train(purpose: str) -> None:
    """Raise MissingDependencyError (one line, exit 1) when [train] is not installed."""
    missing = missing_train_module()
    if missing is not None:
        raise MissingDependencyError(missing, purpose, extra="train")


def import_optional(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import an optional package, or raise MissingDependencyError naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module, purpose, extra=extra) from None
