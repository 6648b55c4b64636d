"""What each Ray Train worker runs: map Ray's context to the worker environment, then the same
`run_objective` as one process (docs/architecture.md, "The engine")."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import torch

from .. import registry
from ..training.env import WorkerEnv
from ..pretrain.entry import PRETRAIN
from ..training.loop import TRAIN, run_objective
from ..training.run_identity import RunIdentity
from ..training.setup import setup_worker
from .coordinator import RayCoordinator
from .relay import RelayConsole, relay_logs


ENTRIES = {entry.name: entry for entry in (TRAIN, PRETRAIN)}  # what the driver may name

def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    context = ray.train.get_context()
    rank, world_size, local_rank = context.get_world_rank(), context.get_world_size(), context.get_local_rank()
    config = _import_user_code(loop_config["config"], loop_config.get("code_source"))
    use_gpu = bool(loop_config.get("use_gpu")) and torch.cuda.is_available()
    device = f"cuda:{local_rank}" if use_gpu else "cpu"
    env = WorkerEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    settings = loop_config["settings"]  # RunSettings, built once by the driver
    worker = setup_worker(env, settings.distributed, cpus_per_worker=int(loop_config["cpus_per_worker"]))
    identity = RunIdentity.from_dict(loop_config["identity"])
    coordinator = RayCoordinator(rank=rank, world_size=world_size, gather=worker.gather, identity=identity, run_dir=loop_config.get("run_dir"))
    queue = loop_config.get("console_queue")
    console = RelayConsole(queue) if queue is not None else None
    if queue is not None:
        relay_logs(queue, rank)
    entry = ENTRIES[loop_config.get("entry", "train")]
    run_objective(config, entry, env, settings=settings, worker=worker, coordinator=coordinator, identity=identity, console=console)


def _import_user_code(config: dict[str, Any], source: str | None) -> dict[str, Any]:
    """`code=` travels as text, so it imports on every node whatever its filesystem holds."""
    if not source:
        return config
    path = Path(tempfile.gettempdir()) / f"distnlp_code_{os.getpid()}.py"
    path.write_text(source)
    registry.import_code(path)
    return {**config, "code": str(path)}
