"""One worker setup for every way a replica is started: one process, torchrun, or a Ray actor.

The launcher only says where the worker runs (`WorkerEnv`: rank, world size, device); this sets
the device, the CPU threads, the process group (unless the launcher already made one, as Ray
Train does) and the gradient reducer (docs/architecture.md, "The engine").

Replicas must start from identical weights (the equivalence contract sums gradients of one
model): `check_same_weights` compares a hash of every rank's state_dict.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..distributed.grad_sync import DEFAULT_BUCKET_MB, WIRE_DTYPES, GradAllReducer, all_gather_json
from ..distributed.process_group import DistEnv, init_process_group, is_distributed
from ..errors import DistnlpError
from .env import WorkerEnv
from ..config.settings import DistributedSettings
from .step import LocalReducer, Reducer


@dataclass
class Worker:
    env: WorkerEnv
    device: torch.device
    bucket_mb: float = DEFAULT_BUCKET_MB
    reduce_dtype: str | None = None  # None: the gradients' own type
    timeout_s: float | None = None  # of collectives (distributed.timeout_s)

    @property
    def distributed(self) -> bool:
        return self.env.world_size > 1 and is_distributed()

    def make_reducer(self, model: nn.Module) -> Reducer:
        if not self.distributed:
            return LocalReducer()
        return GradAllReducer(list(model.named_parameters()), device=self.device, bucket_mb=self.bucket_mb,
                              reduce_dtype=WIRE_DTYPES[self.reduce_dtype] if self.reduce_dtype else None, timeout_s=self.timeout_s)

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
    return Worker(env, device, dist.bucket_mb or DEFAULT_BUCKET_MB, dist.reduce_dtype, dist.timeout_s)


class ReplicaMismatchError(DistnlpError):
    """Replicas that must hold identical weights do not."""


def tensor_digests(model: nn.Module) -> dict[str, str]:
    """Per state_dict entry, a short SHA-256 of its dtype, shape and bytes."""
    out: dict[str, str] = {}
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.sha256(f"{t.dtype}{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().data)
        out[name] = digest.hexdigest()[:16]
    return out


def check_same_weights(model: nn.Module, gather: Callable[[Any], list[Any]]) -> None:
    """Raise on every rank, naming the ranks and the first tensor, if any rank's weights differ from rank 0's."""
    per_tensor = tensor_digests(model)
    whole = hashlib.sha256("".join(f"{k}={v};" for k, v in per_tensor.items()).encode()).hexdigest()
    digests = gather(whole)
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if not differ:
        return
    tables = gather(per_tensor)  # every rank saw the mismatch, so every rank takes part
    other = tables[differ[0]]
    first = next((k for k in sorted(set(tables[0]) | set(other)) if tables[0].get(k) != other.get(k)), "?")
    raise ReplicaMismatchError(
        f"the initial weights differ between replicas: rank(s) {', '.join(map(str, differ))} built other weights than rank 0 (first: {first}); "
        "every rank must build the same model from training.seed (look for code that draws random numbers per rank, or files that differ between nodes)"
    )
