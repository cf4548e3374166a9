"""Data-parallel training under torchrun: the process group, ranks, batch shards, DDP.

Training tier (torch). PyTorch's own engine does the work: torchrun starts one
process per GPU (or CPU process) and sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; `distributed_session` joins the process group from
those (NCCL on CUDA, gloo on the CPU) and `wrap_ddp` puts each network in
DistributedDataParallel, which averages gradients across ranks during backward.

How one global batch is split: `--batch-size B` stays the global batch; each of the
W ranks takes B / W images of it (B must be a multiple of W). `RankBatchSampler`
(a DistributedSampler) gives rank r the positions r, r+W, r+2W, ... of every global
batch of the single-process order, and every rank draws the whole batch's latents
and keeps the same rows, so the union over ranks of step k is exactly step k of a
one-process run. That is why a checkpoint from any world size resumes on any other.

Without torchrun (WORLD_SIZE unset or 1) nothing here touches torch.distributed and
every helper is a no-op. DCGAN_RT_RANK_DIGESTS=DIR makes each rank write
DIR/rank-K.json with sha256 digests of its networks at the end of a run (the test
that proves the ranks stayed in lockstep reads them).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from dcgan_rt.atomic import write_json
from dcgan_rt.errors import DcganRtError, UsageError

DIGESTS_ENV = "DCGAN_RT_RANK_DIGESTS"
TIMEOUT_ENV = "DCGAN_RT_DIST_TIMEOUT"  # seconds a collective may wait for the other ranks

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Where this process stands among torchrun's workers (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and prints."""
        return self.rank == 0


SINGLE = World()


def world_from_env(env: Mapping[str, str] = os.environ) -> World:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them; SINGLE when absent."""
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        world = World(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise UsageError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {env.get('RANK')!r}/"
                         f"{env.get('WORLD_SIZE')!r}/{env.get('LOCAL_RANK')!r}: start ranks with torchrun") from None
    if world.world_size < 1 or not 0 <= world.rank < world.world_size or world.local_rank < 0:
        raise UsageError(f"RANK {world.rank} / WORLD_SIZE {world.world_size} / LOCAL_RANK {world.local_rank} "
                         "do not fit together: start ranks with torchrun")
    return world


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _timeout() -> datetime.timedelta | None:
    value = os.environ.get(TIMEOUT_ENV)
    if not value:
        return None  # torch's default (10 min for NCCL, 30 min for gloo)
    try:
        return datetime.timedelta(seconds=float(value))
    except ValueError:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def distributed_session(device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """Join torchrun's process group for the duration of a run; yields (world, this rank's device).

    On CUDA each rank takes GPU LOCAL_RANK and talks NCCL; on the CPU, gloo. Outside
    torchrun it yields (SINGLE, device) and does nothing. A process group that the
    caller already set up is used as is and left open.
    """
    world = world_from_env()
    if not world.distributed:
        yield world, device
        return
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if world.local_rank >= visible:
            raise UsageError(f"LOCAL_RANK {world.local_rank} has no GPU: {visible} visible on this node; pass "
                             f"--nproc-per-node {visible} (at most one process per GPU)")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        yield world, device
        return
    kwargs: dict[str, Any] = {"backend": backend_for(device)}
    if (timeout := _timeout()) is not None:
        kwargs["timeout"] = timeout
    if device.type == "cuda":
        kwargs["device_id"] = device  # binds the NCCL communicator to this rank's GPU up front
    try:
        dist.init_process_group(**kwargs)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DcganRtError(f"rank {world.rank} could not join the process group ({first}): check "
                           "--rdzv-endpoint / MASTER_ADDR:MASTER_PORT is reachable from every node") from None
    try:
        yield world, device
    finally:
        dist.destroy_process_group()


def rank_batch_size(batch_size: int, world: World) -> int:
    """Images per rank per step: --batch-size is the global batch, split evenly."""
    if batch_size % world.world_size:
        lower = batch_size - batch_size % world.world_size
        raise UsageError(f"--batch-size {batch_size} does not split evenly over {world.world_size} processes "
                         f"(it is the global batch): pass a multiple of {world.world_size}, e.g. "
                         f"{lower or world.world_size}")
    return batch_size // world.world_size


class RankBatchSampler(DistributedSampler):
    """This rank's share of every global batch of an epoch, in the single-process order.

    Like DistributedSampler, rank r takes positions r, r+W, r+2W, ... of one epoch
    permutation (same for every rank, chosen by set_epoch); the permutation is the
    loop's own `epoch_permutation(seed, epoch)` cut to whole global batches, so the
    ranks' k-th batches together are exactly the k-th batch of a one-process run.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int, world: World):
        super().__init__(range(num_images), num_replicas=world.world_size, rank=world.rank, shuffle=True,
                         seed=seed, drop_last=True)
        self.batch_size = batch_size  # global
        self.local_batch = rank_batch_size(batch_size, world)
        self.steps = num_images // batch_size

    def batches(self, start: int = 0) -> Iterator[torch.Tensor]:
        """Index tensors of this rank's batches for the current epoch, from global step `start` on."""
        from dcgan_rt.train.data import epoch_batches

        yield from epoch_batches(len(self.dataset), self.batch_size, self.seed, self.epoch, start,
                                 rank=self.rank, world_size=self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return self.steps * self.local_batch


def convert_sync_batchnorm(module: nn.Module, world: World) -> nn.Module:
    """BatchNorm -> SyncBatchNorm (statistics over the global batch, not each rank's share).
    PyTorch implements SyncBatchNorm for GPUs only."""
    if not world.distributed:
        return module
    if next(module.parameters()).device.type != "cuda":
        raise UsageError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only): drop --sync-bn on the "
                         "CPU, where each process normalises its own share of the batch")
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap_ddp(module: nn.Module, device: torch.device, world: World) -> nn.Module:
    """DistributedDataParallel around `module` (already on `device`); the module itself otherwise.

    DDP's default buffer sync broadcasts BatchNorm running statistics from rank 0 at
    every forward, so all ranks train on rank 0's statistics (the ones the checkpoint keeps).
    """
    if not world.distributed:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (its state_dict has no 'module.' prefix)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def run_on_main(world: World, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result (or its error) to every rank.

    For the steps only rank 0 may do (making the run directory, reading the checkpoint)
    without leaving the other ranks waiting on a rank that has failed.
    """
    if not world.distributed:
        return fn()
    box: list[Any] = [None]
    error: Exception | None = None
    if world.is_main:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # every rank must hear about it, whatever it is
            error = exc
            box[0] = ("error", str(exc), getattr(exc, "exit_code", 1))
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0][0] == "error":
        _, message, code = box[0]
        exc = DcganRtError(message)
        exc.exit_code = code  # the same exit code as rank 0 (2 for bad usage)
        raise exc
    return box[0][1]


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """Average a tensor of per-rank values over all ranks (in place; a no-op alone)."""
    if world.distributed:
        dist.all_reduce(values)
        values /= world.world_size
    return values


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when it is True on any (so all ranks stop at the same step)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def state_digest(module: nn.Module) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes and bytes, in order)."""
    h = hashlib.sha256()
    for name, tensor in unwrap(module).state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def parameter_digest(module: nn.Module) -> str:
    """sha256 over the parameters only (what DDP keeps equal; BatchNorm buffers are rank 0's)."""
    h = hashlib.sha256()
    for name, p in unwrap(module).named_parameters():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_rank_digests(world: World, step: int, modules: Mapping[str, nn.Module | None]) -> Path | None:
    """With DCGAN_RT_RANK_DIGESTS=DIR set, write DIR/rank-K.json: each network's parameter
    and full-state digests at the end of the run. Diagnostics for tests; off by default."""
    folder = os.environ.get(DIGESTS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"rank-{world.rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {
        "rank": world.rank, "world_size": world.world_size, "step": step,
        "parameters": {k: parameter_digest(m) for k, m in modules.items() if m is not None},
        "state": {k: state_digest(m) for k, m in modules.items() if m is not None},
    })
    return path
