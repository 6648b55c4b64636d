"""What each Ray Train worker runs: set up device, threads and collectives, then `run_worker`
(or `run_pretrain_worker` for `distnlp pretrain`)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import torch
import torch.distributed as dist

from .. import registry
from ..distributed.grad_sync import GradAllReducer, all_gather_json
from ..training.env import WorkerEnv
from ..training.loop import run_worker
from ..training.step import LocalReducer
from .coordinator import RayCoordinator


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config: dict[str, Any] = loop_config["config"]
    context = ray.train.get_context()
    rank, world_size, local_rank = context.get_world_rank(), context.get_world_size(), context.get_local_rank()
    config = _import_user_code(config, loop_config.get("code_source"))
    dist_cfg = config.get("distributed") or {}
    use_gpu = bool(loop_config.get("use_gpu"))
    if use_gpu and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        threads = int(dist_cfg.get("num_threads", 0) or 0) or int(loop_config.get("cpus_per_worker", 1))
        # One OpenMP pool per worker sized to its CPU share: oversubscribed pools busy-wait and crawl.
        torch.set_num_threads(max(1, threads))
    env = WorkerEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=str(device))
    distributed = dist.is_available() and dist.is_initialized() and world_size > 1
    gather = (lambda obj: all_gather_json(obj, device)) if distributed else (lambda obj: [obj])
    bucket_mb = float(dist_cfg.get("bucket_mb", 25))

    def make_reducer(nlp: Any) -> Any:
        if not distributed:
            return LocalReducer()
        return GradAllReducer(list(nlp.named_parameters()), device=device, bucket_mb=bucket_mb)

    coordinator = RayCoordinator(rank=rank, world_size=world_size, gather=gather, run_dir=loop_config.get("run_dir"))
    if loop_config.get("entry") == "pretrain":
        from ..pretrain.loop import run_pretrain_worker

        run_pretrain_worker(config, env, make_reducer=make_reducer, coordinator=coordinator)
    else:
        run_worker(config, env, make_reducer=make_reducer, coordinator=coordinator)


def _import_user_code(config: dict[str, Any], source: str | None) -> dict[str, Any]:
    """`code=` travels as text, so it imports on every node whatever its filesystem holds."""
    if not source:
        return config
    path = Path(tempfile.gettempdir()) / f"distnlp_code_{os.getpid()}.py"
    path.write_text(source)
    registry.import_code(path)
    return {**config, "code": str(path)}
