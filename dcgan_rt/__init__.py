"""dcgan-rt: train DCGAN generators and run them as fast, reproducible image factories.

Core tier: this package imports only numpy and Pillow at import time; torch,
onnxruntime and tensorrt are imported lazily by the code that needs them.
"""

__version__ = "0.1.0"

from dcgan_rt.errors import DcganRtError, UsageError  # noqa: E402

__all__ = ["__version__", "DcganRtError", "UsageError"]
