"""Checkpoints committed through `ray.train.report` (DESIGN.md decision 7 under Ray).

Rank 0 gathers every replica's cursor and RNG state, writes the complete checkpoint (manifest
last) into a local temporary directory and reports it; the other ranks report no checkpoint.
`report` is a barrier: Ray registers the checkpoint only once every rank has reported, so a
failure mid-way never yields a checkpoint that looks finished. On a restart (FailureConfig) or
a resubmitted run (same name + storage_path), `ray.train.get_checkpoint()` returns the last one.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray.train

from ..training import checkpoint as ckpt
from ..training.coordinator import Gather, write_checkpoint

log = logging.getLogger(__name__)


class RayCoordinator:
    def __init__(self, *, rank: int, world_size: int, gather: Gather) -> None:
        self.rank, self.world_size, self.gather = rank, world_size, gather

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            state = ckpt.load(Path(directory), self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)
        if self.rank == 0:
            log.info("resumed from Ray checkpoint %s (step %s)", checkpoint.path, state.get("step"))
        return state

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        report = {k: v for k, v in (metrics or {"step": step}).items() if isinstance(v, (int, float, str)) or v is None}
        if self.rank != 0:
            ray.train.report(report, checkpoint=None)
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"distnlp-step-{step:08d}-"))
        try:
            write_checkpoint(tmp, step=step, world_size=self.world_size, nlp=nlp, optimizer=optimizer, averages=averages, states=states, state=state)
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(str(tmp)), checkpoint_dir_name=f"step-{step:08d}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
