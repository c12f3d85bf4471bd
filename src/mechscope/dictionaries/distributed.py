"""Data-parallel training with PyTorch DDP under torchrun (NCCL on GPUs, gloo on CPU).

Each rank trains on its own slice of every global batch; DDP averages gradients, so with a loss
that is a mean over the batch the ranks together take exactly the single-process step.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from mechscope.devices import resolve_device


def setup(device: str = "auto") -> tuple[int, int]:
    """(rank, world size): joins the process group torchrun describes, if any."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def device(requested: str) -> torch.device:
    chosen = resolve_device(requested)
    if chosen.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return chosen


def wrap(module: nn.Module) -> nn.Module:
    if not active():
        return module
    on_cuda = next(module.parameters()).device.type == "cuda"
    return nn.parallel.DistributedDataParallel(module, device_ids=[torch.cuda.current_device()] if on_cuda else None)


def all_reduce_any(mask: torch.Tensor) -> torch.Tensor:
    if not active():
        return mask
    counts = mask.to(torch.int32)
    dist.all_reduce(counts)
    return counts > 0


def all_reduce_min(value: torch.Tensor) -> torch.Tensor:
    if not active():
        return value
    value = value.detach().clone().float()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def barrier() -> None:
    if active():
        dist.barrier()
