"""Starting and stopping the process group: NCCL on GPUs, gloo on CPUs, ranks as torchrun sets them."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environ(cls) -> "DistEnv":
        """Read RANK / WORLD_SIZE / LOCAL_RANK as torchrun and Ray Train's TorchTrainer set them."""
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )


def default_backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(env: DistEnv, device: torch.device, timeout_s: float = 600.0) -> None:
    """Join the group unless already in one (Ray Train's TorchTrainer creates it for us)."""
    if env.world_size <= 1 or dist.is_initialized():
        return
    dist.init_process_group(
        backend=default_backend(device),
        rank=env.rank,
        world_size=env.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def host_group(timeout_s: float | None = None) -> Any:
    """The group for numbers the host already holds (item counts, words, which parameters have a
    gradient): summing them with NCCL would copy them to the GPU and read the sum back, a device
    sync per step; a gloo group of the same ranks sums them on the CPUs. None (the default group)
    when that is gloo already. A collective: every rank calls it at the same point of its run.
    On several nodes gloo needs TCP between them, as NCCL's bootstrap does (GLOO_SOCKET_IFNAME
    picks the interface)."""
    if dist.get_backend() == "gloo":
        return None
    timeout = datetime.timedelta(seconds=timeout_s) if timeout_s else None
    return dist.new_group(backend="gloo", timeout=timeout)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
