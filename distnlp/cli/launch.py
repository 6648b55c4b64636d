"""The edge where a command becomes a run: compose and check the config, claim the output
directory, and run the named entry (`training.loop.TRAIN`, `pretrain.entry.PRETRAIN`) in this
process, as one torchrun rank, or on Ray replicas."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..config import validate_config
from ..config.settings import RunSettings, training_run
from ..distributed.process_group import DistEnv, barrier, destroy_process_group
from ..pipeline.device import pick_device
from ..training.entry import Entry
from ..training.env import WorkerEnv
from ..training.loop import checkpoint_dir, run_objective
from ..training.run_identity import prepare_output_dir
from .compose import compose_config, to_yaml


def load_config(overrides: list[str]) -> dict[str, Any]:
    config = compose_config(overrides)
    validate_config(config)
    training_run(config)  # step limits, policies, batcher: refused before any work starts
    return config


def write_config_yaml(config: dict[str, Any], output_dir: str) -> None:
    (Path(output_dir) / "config.yaml").write_text(to_yaml(config))


def run_entry(config: dict[str, Any], entry: Entry) -> dict[str, Any]:
    """Run training or pretraining where `distributed` says: this process, or Ray replicas.

    The output directory is claimed first (run identity: a fresh run, or `resume=true`), so a
    refused directory costs nothing and nothing in it is touched."""
    settings = entry.settings(config)
    loop, dist = settings.loop, settings.distributed
    if dist.backend == "ray":
        from ..ray_backend.driver import train_on_ray  # lazy: imports Ray (seconds), only for distributed=ray

        # the driver builds the settings again, from the config with its paths made absolute
        return train_on_ray(config, entry=entry, on_prepared=lambda: write_config_yaml(config, loop.output_dir))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _run_torchrun_rank(config, entry, settings)
    identity = prepare_output_dir(config, entry.section, Path(loop.output_dir), resume=loop.resume, overwrite=loop.overwrite,
                                  checkpoint_dirs=[checkpoint_dir(loop)] if loop.checkpoints_to_keep > 0 else [])
    write_config_yaml(config, loop.output_dir)
    device = "cpu" if dist.use_gpu is False else dist.device
    return run_objective(config, entry, WorkerEnv(device=str(pick_device(device))), settings=settings, identity=identity)


def _run_torchrun_rank(config: dict[str, Any], entry: Entry, settings: RunSettings) -> dict[str, Any]:
    """One rank started by torchrun (launch/torchrun.sh): its environment says where it runs."""
    denv = DistEnv.from_environ()
    device = f"cuda:{denv.local_rank}" if torch.cuda.is_available() and settings.distributed.use_gpu is not False else "cpu"
    env = WorkerEnv(rank=denv.rank, world_size=denv.world_size, local_rank=denv.local_rank, device=device)
    if env.is_rank_zero:
        print(f"torchrun: {env.world_size} ranks on {device.split(':')[0]}", flush=True)
    try:
        summary = run_objective(config, entry, env, settings=settings)  # rank 0 claims output_dir; every rank gets the run identity
        if env.is_rank_zero:
            write_config_yaml(config, settings.loop.output_dir)
        # Every rank leaves together: one tearing gloo down while another still saves aborted
        # the early one now and then ("terminate called without an active exception").
        barrier()
    finally:
        # Tear the group down before the interpreter exits: gloo threads left running abort it.
        destroy_process_group()
    return summary
