"""The driver side of `distnlp train distributed=ray`: connect to (or start) Ray and run a
TorchTrainer with one worker per GPU, or N CPU workers with gloo."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train.torch import TorchConfig, TorchTrainer

from ..config.paths import absolute_paths
from ..config.settings import DistributedSettings
from ..errors import ConfigError, DistnlpError
from ..training.console import TerminalConsole
from ..training.entry import Entry
from ..training.loop import TRAIN
from ..training.run_identity import prepare_output_dir
from .connection import loopback_only, probe, run_with_deadline
from .logging_setup import RayLogging
from .relay import DriverRelay, FailureNotice
from .worker import train_loop_per_worker

log = logging.getLogger(__name__)

# How often a healthy elastic group checks for room to grow. Growing restarts the group from the
# last committed checkpoint (the steps since are trained again), so not too often: Ray's default.
RESIZE_MONITOR_INTERVAL_S = 60.0


def connect(dist: DistributedSettings) -> None:
    """Join the cluster at distributed.address (or RAY_ADDRESS), else start a private local Ray.

    Private means `address="local"`: a bare ray.init() would instead join whatever cluster the
    `ray_current_cluster` file in Ray's temp directory names, and a stale one hangs the run.
    Every attempt has a deadline (distributed.connect_timeout_s, default 120 s) and fails with
    an error naming the address and what to do.
    """
    if ray.is_initialized():
        return
    quiet = RayLogging.from_settings(dist)
    address = dist.address or os.environ.get("RAY_ADDRESS")
    timeout_s = float(dist.connect_timeout_s or 120)
    if address:
        what = f"the Ray cluster at {address}"
        fix = ("check that it is running and reachable from here (`ray status --address ...`), or unset "
               "distributed.address and RAY_ADDRESS to train on a private local Ray")
        probe(address, timeout_s, fix)
        run_with_deadline(lambda: ray.init(address=address, **quiet.init_kwargs()), timeout_s, what, fix)
    else:
        # A private local Ray for this run, on loopback only: its ports (GCS, object manager,
        # workers) are reachable from this machine alone.
        fix = ("see Ray's logs under the session's logs/ directory in Ray's temp dir; raise "
               "distributed.connect_timeout_s on a loaded machine")
        with loopback_only():
            run_with_deadline(
                lambda: ray.init(address="local", num_cpus=dist.num_cpus, include_dashboard=False,
                                 _node_ip_address="127.0.0.1", **quiet.init_kwargs()),
                timeout_s, "a private local Ray", fix,
            )


def use_gpu(dist: DistributedSettings) -> bool:
    setting = dist.use_gpu
    if setting == "auto":
        return ray.cluster_resources().get("GPU", 0) >= 1
    return bool(setting)


def train_on_ray(config: dict[str, Any], entry: Entry = TRAIN, on_prepared: Callable[[], None] | None = None,
                 callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run `distnlp train` (TRAIN) or `distnlp pretrain` (PRETRAIN, pretrain/entry.py) on Ray.
    `callbacks`: more Ray Train callbacks (a `distnlp tune` trial's reports to Tune)."""
    config = absolute_paths(config)
    run_settings = entry.settings(config)  # once, here: the workers get these, not a config to parse
    settings, dist = run_settings.loop, run_settings.distributed
    section = entry.section
    output_dir = Path(settings.output_dir)
    run_name = dist.run_name
    storage = str(dist.storage_path or (output_dir / "ray"))
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    run_dir = f"{storage}/{run_name}"
    local_run_dir = None if "://" in run_dir else Path(run_dir)
    if not settings.resume and local_run_dir is not None and local_run_dir.exists() and not _inside(local_run_dir, output_dir):
        raise ConfigError("distributed.run_name", f"{run_dir} already holds a Ray run", f"resume it with {section}.resume=true, or choose another distributed.run_name")
    # Claim the output directory before Ray starts: a refused one costs nothing.
    identity = prepare_output_dir(config, section, output_dir, resume=settings.resume, overwrite=settings.overwrite,
                                  checkpoint_dirs=[local_run_dir] if local_run_dir is not None else [])
    if on_prepared is not None:
        on_prepared()
    connect(dist)
    gpu = use_gpu(dist)
    resources = dict(dist.resources_per_worker or {"CPU": 1})
    if gpu:
        resources.setdefault("GPU", 1)
    code = config.get("code")
    relay = DriverRelay(TerminalConsole())
    loop_config = {
        "config": config,
        "entry": entry.name,
        "settings": run_settings,
        "use_gpu": gpu,
        "cpus_per_worker": max(1, int(resources.get("CPU", 1))),
        "code_source": Path(code).read_text() if code else None,
        "run_dir": run_dir,
        "identity": identity.as_dict(),
        "console_queue": relay.queue,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(timeout_s=int(dist.timeout_s)),
        scaling_config=scaling_config(dist, gpu, resources),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=dist.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=max(1, settings.checkpoints_to_keep)),
            callbacks=[FailureNotice(relay.queue, dist.max_failures), *callbacks],
        ),
    )
    print(f"ray: {dist.num_workers} {'GPU' if gpu else 'CPU'} worker(s); Ray run directory {run_dir}", flush=True)
    log.debug("run id %s", identity.run_id)
    try:
        with relay:  # rank 0's table and progress, shown here (relay.py)
            result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; show the user the cause, not Ray's stack
        raise DistnlpError(f"distributed {entry} failed: {_root_cause(exc)}") from exc
    metrics = dict(result.metrics or {})
    log.debug("ray: last committed checkpoint %s; metrics %s", result.checkpoint.path if result.checkpoint else None, metrics)
    return {"metrics": metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None, "output_dir": str(output_dir)}


def scaling_config(dist: DistributedSettings, gpu: bool, resources: dict[str, Any]) -> ray.train.ScalingConfig:
    """A fixed group of N workers, or with num_workers=MIN..MAX Ray Train's elastic scaling: after a
    failure the group restarts with as many workers as the cluster holds then (at least MIN; it
    waits for MIN), and a running group is restarted larger when capacity returns. Every restart
    resumes from the last committed checkpoint, whose data cursors re-split over the new group."""
    if not dist.elastic:
        return ray.train.ScalingConfig(num_workers=dist.num_workers, use_gpu=gpu, resources_per_worker=resources)
    return ray.train.ScalingConfig(num_workers=dist.workers, use_gpu=gpu, resources_per_worker=resources,
                                   elastic_resize_monitor_interval_s=RESIZE_MONITOR_INTERVAL_S)


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _root_cause(exc: BaseException) -> str:
    seen = exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    text = str(seen).strip().splitlines()
    return text[-1] if text else type(seen).__name__
