"""The PyTorch backend on a CUDA GPU: the fast path where neither TensorRT nor onnxruntime-gpu is installed.

Core tier in placement; torch (with CUDA) and dcgan_rt.train are imported when built.
What makes it fast, each measured by benchmarks/device_check.py:

- BatchNorm folded into the transposed convolutions (backends.torch_fold) and the
  model in channels_last, which cuDNN's transposed-convolution kernels prefer.
- A CUDA graph per batch size (rounded up to a power of two, so a job's odd last batch
  reuses one): the whole batch (model, NaN flag, the dcgan_rt.pixels uint8 rule,
  NCHW -> NHWC) is one graph launch instead of ~20 kernel launches from Python.
  Graphs need static buffers: one input and output set per graph (z, and the
  label of a conditional model).
- Two batches in flight on one stream, in pinned host buffers: `map_images`
  enqueues batch k+1 (host->device copy, graph, device->host copy) before it waits
  for batch k, so the GPU keeps computing while the writers encode batch k.
- fp32 by default, TF32 off (the fp32 parity bound, DESIGN §5, does not survive
  TF32's 10-bit mantissa). fp16 only when asked for (`precision="fp16"`): it meets
  the fp16 bounds and the manifest records it. bf16 is not offered: its 8-bit
  mantissa misses the fp16 bound (max abs 3e-2) on ordinary generators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dcgan_rt.backends import FLOAT_NCHW, UINT8_NHWC, Backend
from dcgan_rt.backends.inflight import IN_FLIGHT, pipelined
from dcgan_rt.batch import Batch
from dcgan_rt.errors import NumericalError, UsageError
from dcgan_rt.pixels import to_uint8_tensor

PRECISIONS = ("fp32", "fp16")


class _Graph:
    """One batch size: static device buffers and the CUDA graph that fills them."""

    def __init__(self, torch, model, n: int, inputs: list[tuple], device, uint8: bool):
        # zeros are valid for every input: latents, class 0, an all-zero attribute vector
        self.inputs = [torch.zeros((n, *tail), dtype=dtype, device=device) for tail, dtype in inputs]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up outside the graph: cuDNN picks its kernels, allocations settle
                run_batch(torch, model, self.inputs, uint8)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # A private memory pool per graph: graphs of several batch sizes replay in any order.
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.out, self.bad = run_batch(torch, model, self.inputs, uint8)


def run_batch(torch, model, inputs: list, uint8: bool):
    """(output, NaN-or-inf flag) on the device for inputs [z] or [z, label]: uint8
    (N, H, W, C) by the dcgan_rt.pixels rule in float32, or float32 (N, C, H, W)."""
    x = model(*inputs).float()  # (N, C, H, W)
    bad = ~torch.isfinite(x).all()
    if not uint8:
        return x.contiguous(), bad
    pixels = to_uint8_tensor(x)
    return pixels.permute(0, 2, 3, 1).contiguous(), bad  # (N, H, W, C)


def graph_size(n: int) -> int:
    """The graph a batch of n runs in: the next power of two, so odd batches (a job's last,
    a resumed range) reuse a few graphs instead of capturing one per size."""
    return 1 << (n - 1).bit_length()


class _Slot:
    """Pinned host buffers for one batch in flight, and the event that says they are free."""

    def __init__(self, torch):
        self.torch = torch
        self.capacity = 0
        self.n = 0
        self.event = torch.cuda.Event()
        self.bad = torch.zeros(1, dtype=torch.bool).pin_memory()

    def ensure(self, n: int, inputs: list[tuple], out_shape: tuple, out_dtype) -> None:
        if n > self.capacity:
            torch = self.torch
            self.inputs = [torch.empty((n, *tail), dtype=dtype).pin_memory() for tail, dtype in inputs]
            self.out = torch.empty((n, *out_shape), dtype=out_dtype).pin_memory()
            self.capacity = n


class TorchCudaBackend(Backend):
    name = "torch"

    def __init__(self, model: str | Path, gpu: int = 0, uint8: bool = True, precision: str = "fp32",
                 graphs: bool = True):
        from dcgan_rt.backends.torch import check_release_files, import_torch

        if precision not in PRECISIONS:
            raise UsageError(f"the torch backend runs fp32 or fp16 (--precision), not {precision!r}")
        check_release_files(model)
        torch = import_torch()
        if not torch.cuda.is_available():
            raise UsageError("the torch CUDA backend needs a CUDA GPU, and this PyTorch sees none")
        if not 0 <= gpu < torch.cuda.device_count():
            raise UsageError(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
        from dcgan_rt.backends.torch_fold import fold_batchnorm
        from dcgan_rt.train.release import load_generator

        device = torch.device("cuda", gpu)
        torch.cuda.set_device(device)  # events, graph pools and pinned buffers belong to this device
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        generator, card = load_generator(model, "cpu")
        folded = fold_batchnorm(generator)
        if precision == "fp16":
            folded = folded.half()
        self._model = folded.to(device, memory_format=torch.channels_last)
        c, h, w = card.model_config.image_shape
        super().__init__(card, device=str(device), precision=precision,
                         output=UINT8_NHWC if uint8 else FLOAT_NCHW,
                         detail=f"{device}: {torch.cuda.get_device_name(device)}, {precision}, BatchNorm folded, "
                                f"channels_last{', CUDA graphs' if graphs else ''}")
        self.path = Path(model)
        self._torch = torch
        self._device = device
        self._uint8 = uint8
        self._use_graphs = graphs
        self._out_shape = (h, w, c) if uint8 else (c, h, w)
        self._out_dtype = torch.uint8 if uint8 else torch.float32
        dtypes = {"float32": torch.float32, "int64": torch.int64}
        self._inputs = [(tuple(spec["shape"][1:]), dtypes[spec["dtype"]]) for spec in card.inputs]
        self._stream = torch.cuda.Stream(device)
        self._graphs: dict[int, _Graph] = {}
        self._slots = [_Slot(torch) for _ in range(IN_FLIGHT)]
        self._next = 0

    def replay_only(self, n: int):
        """Run the batch-n graph once on the device, no copies (benchmarks time the GPU alone)."""
        with self._torch.cuda.stream(self._stream):
            self._graph(graph_size(n)).graph.replay()
        self._stream.synchronize()

    def _graph(self, n: int) -> _Graph:
        graph = self._graphs.get(n)
        if graph is None:
            with self._torch.cuda.device(self._device):
                graph = _Graph(self._torch, self._model, n, self._inputs, self._device, self._uint8)
            self._graphs[n] = graph
        return graph

    def _enqueue(self, batch: Batch | np.ndarray) -> _Slot:
        torch = self._torch
        batch = self._check_batch(batch)
        n = len(batch)
        arrays = [a for a in (batch.z, batch.labels) if a is not None]  # one per model input
        slot = self._slots[self._next]
        self._next = (self._next + 1) % IN_FLIGHT
        slot.event.synchronize()  # the slot's previous batch has left its buffers
        slot.ensure(n, self._inputs, self._out_shape, self._out_dtype)
        for host, array in zip(slot.inputs, arrays):
            host[:n].numpy()[...] = array
        stream = self._stream
        if self._use_graphs:
            graph = self._graph(graph_size(n))
            stream.wait_stream(torch.cuda.current_stream(self._device))  # graph capture and warm-up are done
            with torch.cuda.stream(stream):
                for static, host in zip(graph.inputs, slot.inputs):
                    static[:n].copy_(host[:n], non_blocking=True)
                graph.graph.replay()
                # Rows past n hold an earlier batch's inputs: valid, and never copied out.
                out, bad = graph.out[:n], graph.bad
        else:
            with torch.cuda.stream(stream), torch.inference_mode():
                inputs = [host[:n].to(self._device, non_blocking=True) for host in slot.inputs]
                out, bad = run_batch(torch, self._model, inputs, self._uint8)
        with torch.cuda.stream(stream):
            slot.out[:n].copy_(out, non_blocking=True)
            slot.bad.copy_(bad.reshape(1), non_blocking=True)
            slot.event.record(stream)
        slot.n = n
        return slot

    def _collect(self, slot: _Slot) -> np.ndarray:
        slot.event.synchronize()
        if bool(slot.bad[0]):
            raise NumericalError("the generator produced NaN or infinite values on the GPU"
                                 + (" in fp16: run it in fp32 (drop --precision fp16)" if self.precision == "fp16"
                                    else "; the model weights are broken (retrain)"))
        return slot.out[: slot.n].numpy().copy()  # the pinned buffer is reused

    def __call__(self, batch: Batch | np.ndarray) -> np.ndarray:
        return self._collect(self._enqueue(batch))

    def map_images(self, batches: Iterable[Batch | np.ndarray]) -> Iterator[np.ndarray]:
        return pipelined(batches, self._enqueue, self._collect, self._to_images)

    def _to_images(self, out: np.ndarray) -> np.ndarray:
        from dcgan_rt.images import to_uint8

        return out if self._uint8 else to_uint8(out)

    def close(self) -> None:
        if self._slots:
            self._stream.synchronize()
        self._graphs.clear()
        self._slots = []
