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
    def __init__(self, *, rank: int, world_size: int, gather: Gather, run_dir: str | None = None) -> None:
        self.rank, self.world_size, self.gather = rank, world_size, gather
        self.run_dir = run_dir  # storage_path/name, when it is a local or shared filesystem path

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                candidate = Path(directory)
                if ckpt.is_complete(candidate) and not self._newer_on_disk(ckpt.manifest_step(candidate)):
                    return self._load(candidate, nlp, optimizer, averages, stream)
        # Ray 2.60 sometimes hands back no checkpoint (or an older one) when a worker dies right
        # after a report; every uploaded checkpoint is complete (the manifest lists its files), so
        # the newest complete one under the run directory is the last committed state.
        newest = self._newest_on_disk()
        return None if newest is None else self._load(newest, nlp, optimizer, averages, stream)

    def _load(self, root: Path, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any]:
        state = ckpt.load(root, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)
        if self.rank == 0:
            log.info("resumed from %s (step %s)", root, state.get("step"))
        return state

    def _newest_on_disk(self) -> Path | None:
        if not self.run_dir or "://" in self.run_dir or not Path(self.run_dir).is_dir():
            return None
        done = [p for p in Path(self.run_dir).iterdir() if p.is_dir() and ckpt.is_complete(p)]
        return max(done, key=ckpt.manifest_step) if done else None

    def _newer_on_disk(self, step: int) -> bool:
        newest = self._newest_on_disk()
        return newest is not None and ckpt.manifest_step(newest) > step

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        report = {k: v for k, v in (metrics or {"step": step}).items() if isinstance(v, (int, float, str)) or v is None}
        if self.rank != 0:
            ray.train.report(report, checkpoint=None)
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"distnlp-step-{step:08d}-"))
        try:
            write_checkpoint(tmp, step=step, world_size=self.world_size, nlp=nlp, optimizer=optimizer, averages=averages, states=states, state=state)
            # No checkpoint_dir_name: with it, Ray 2.60 does not hand the checkpoint back on a
            # restart (get_checkpoint() returns None). The manifest inside holds the step.
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(str(tmp)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
