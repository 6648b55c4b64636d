"""One worker setup for every way a replica is started: one process, torchrun, or a Ray actor.

The launcher only says where the worker runs (`WorkerEnv`: rank, world size, device); this sets
the device, the CPU threads, the process group (unless the launcher already made one, as Ray
Train does) and the gradient reducer (docs/architecture.md, "The engine").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..distributed.grad_sync import DEFAULT_BUCKET_MB, GradAllReducer, all_gather_json
from ..distributed.process_group import DistEnv, init_process_group, is_distributed
from .env import WorkerEnv
from .settings import DistributedSettings
from .step import LocalReducer, Reducer


@dataclass
class Worker:
    env: WorkerEnv
    device: torch.device
    bucket_mb: float = DEFAULT_BUCKET_MB

    @property
    def distributed(self) -> bool:
        return self.env.world_size > 1 and is_distributed()

    def make_reducer(self, model: nn.Module) -> Reducer:
        if not self.distributed:
            return LocalReducer()
        return GradAllReducer(list(model.named_parameters()), device=self.device, bucket_mb=self.bucket_mb)

    def gather(self, obj: Any) -> list[Any]:
        return all_gather_json(obj, self.device) if self.distributed else [obj]


def setup_worker(env: WorkerEnv, dist: DistributedSettings | None = None, *, cpus_per_worker: int = 0) -> Worker:
    dist = dist or DistributedSettings()
    device = torch.device(env.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        # One OpenMP pool per worker sized to its CPU share: oversubscribed pools busy-wait and crawl.
        threads = dist.num_threads or int(cpus_per_worker or 0)
        if threads > 0:
            torch.set_num_threads(threads)
    if env.world_size > 1:
        init_process_group(DistEnv(env.rank, env.world_size, env.local_rank), device, dist.timeout_s)
    return Worker(env, device, dist.bucket_mb or DEFAULT_BUCKET_MB)
