"""The worker entry: `run_worker(config, env)` trains the pipeline, `run_pretrain_worker` (in
pretrain/entry.py) pretrains its embedding; both are `run_objective` with another `Entry`.

Single-process training, `launch/torchrun.sh` and every Ray replica call this same entry
(docs/architecture.md, "Layers"). It is plain torch: collectives come in only through the
worker setup's reducer, checkpoints through a coordinator.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import registry
from .console import Console
from .coordinator import Coordinator, FailureInjection, FileCoordinator
from .engine import run_loop
from .entry import Entry
from .env import WorkerEnv
from .pipeline_objective import PipelineObjective, build_pipeline
from .run_identity import RunIdentity, prepare_output_dir
from ..config.settings import LoopSettings, RunSettings, training_run
from .setup import Worker, check_same_weights, setup_worker
from .step import Reducer

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def checkpoint_dir(settings: LoopSettings) -> Path:
    return Path(settings.output_dir) / "checkpoints"


def establish_identity(config: Mapping[str, Any], entry: Entry, settings: LoopSettings, worker: Worker) -> RunIdentity:
    """Rank 0 prepares the output directory; every rank gets the same identity."""
    identity = None
    if worker.env.is_rank_zero:
        dirs = [checkpoint_dir(settings)] if settings.checkpoints_to_keep > 0 else []
        identity = prepare_output_dir(config, entry.section, Path(settings.output_dir), resume=settings.resume,
                                      overwrite=settings.overwrite, checkpoint_dirs=dirs)
    shared = worker.gather(identity.as_dict() if identity else None)[0]
    return RunIdentity.from_dict(shared)


def run_objective(
    config: Mapping[str, Any],
    entry: Entry,
    env: WorkerEnv | None = None,
    *,
    settings: RunSettings | None = None,
    worker: Worker | None = None,
    coordinator: Coordinator | None = None,
    identity: RunIdentity | None = None,
    make_reducer: Callable[[nn.Module], Reducer] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run `entry` (TRAIN here, PRETRAIN in pretrain/entry.py) on this replica; returns a summary.
    `settings`: built by the launcher from this config (built here when a caller passes none).
    `console`: where rank 0's table and progress go (default: this process's terminal)."""
    env = env or (worker.env if worker else WorkerEnv())
    run = settings or entry.settings(config)
    loop_settings = run.loop
    registry.import_code(config.get("code"))
    dist = run.distributed
    worker = worker or setup_worker(env, dist)
    if identity is None:
        identity = establish_identity(config, entry, loop_settings, worker)

    # Every rank builds the same initial weights from the same seed; dropout and masks differ.
    seed_everything(loop_settings.seed)
    objective = entry.objective(config, run, env, console)
    if env.world_size > 1:  # a rank that built other weights would train another model, silently
        check_same_weights(objective.model, worker.gather)
    seed_everything(loop_settings.seed + 1000 * env.rank)
    objective.model.to(worker.device)
    reducer = make_reducer(objective.model) if make_reducer is not None else worker.make_reducer(objective.model)
    if coordinator is None and loop_settings.checkpoints_to_keep > 0:
        coordinator = FileCoordinator(checkpoint_dir(loop_settings), rank=env.rank, world_size=env.world_size, keep=loop_settings.checkpoints_to_keep,
                                      gather=worker.gather, identity=identity)
    failure = FailureInjection(dist.fail_at_step, dist.fail_in_checkpoint)
    return run_loop(objective, loop_settings, env, reducer=reducer, coordinator=coordinator, failure=failure)


def pipeline_objective(config: Mapping[str, Any], settings: RunSettings, env: WorkerEnv, console: Console | None) -> PipelineObjective:
    return PipelineObjective(config, settings, env, build_pipeline(config, settings.corpus), console)


TRAIN = Entry("train", "training", training_run, pipeline_objective)


def run_worker(config: Mapping[str, Any], env: WorkerEnv | None = None, **kwargs: Any) -> dict[str, Any]:
    """Train the pipeline the config describes; returns a summary (best score, paths, steps)."""
    return run_objective(config, TRAIN, env, **kwargs)
