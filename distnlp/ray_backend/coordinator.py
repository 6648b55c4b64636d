"""Checkpoints committed through `ray.train.report` (docs/architecture.md, "Checkpoints").

Rank 0 gathers every replica's cursor and RNG state, writes the complete checkpoint (manifest
last, naming the run) into a local temporary directory and reports it; the other ranks report
no checkpoint. `report` is a barrier: Ray registers the checkpoint only once every rank has
reported. On a restart (FailureConfig) or a resubmitted run (`resume=true`, same name and
storage_path), the candidates are the checkpoint Ray hands back plus those of the same run in
the run directory (Ray 2.60 sometimes hands back none, or an older one, when a worker dies right
after a report). A candidate of another run is never loaded; one whose checksums do not match is
skipped with a warning naming the bad file. Every rank restores the same step, agreed through the
worker's gather (training/coordinator.py, `restore_agreed`).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray.train

from ..errors import CheckpointError
from ..training import checkpoint as ckpt
from ..training.coordinator import FailureInjection, Gather, restore_agreed, write_checkpoint
from ..training.run_identity import RunIdentity, committed_checkpoints


class RayCoordinator:
    def __init__(self, *, rank: int, world_size: int, gather: Gather, identity: RunIdentity, run_dir: str | None = None) -> None:
        self.rank, self.world_size, self.gather = rank, world_size, gather
        self.identity = identity
        self.run_dir = run_dir  # storage_path/name, when it is a local or shared filesystem path
        self.failure = FailureInjection(armed=False)

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        def load(path: Path) -> dict[str, Any]:
            return ckpt.load(path, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)

        with self._from_ray() as handed_back:
            candidates = {p.resolve() for p in self._on_disk()}
            if handed_back is not None and ckpt.is_complete(handed_back) and ckpt.manifest_run_id(handed_back) == self.identity.run_id:
                candidates.add(handed_back.resolve())
            state = restore_agreed(candidates, load, rank=self.rank, gather=self.gather)
        if state is None and self.identity.resume:
            raise CheckpointError(f"{self.run_dir}: no committed checkpoint of run {self.identity.run_id} could be loaded; start the run again with overwrite=true")
        return state

    @contextlib.contextmanager
    def _from_ray(self) -> Iterator[Path | None]:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def _on_disk(self) -> list[Path]:
        if not self.run_dir or "://" in self.run_dir:
            return []
        return committed_checkpoints([Path(self.run_dir)], self.identity.run_id)

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        report = {k: v for k, v in (metrics or {"step": step}).items() if isinstance(v, (int, float, str)) or v is None}
        if self.rank != 0:
            ray.train.report(report, checkpoint=None)
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"distnlp-step-{step:08d}-"))
        try:
            write_checkpoint(tmp, step=step, world_size=self.world_size, identity=self.identity, nlp=nlp, optimizer=optimizer,
                             averages=averages, states=states, state=state, before_commit=lambda: self.failure.in_commit(step))
            # No checkpoint_dir_name: with it, Ray 2.60 does not hand the checkpoint back on a
            # restart (get_checkpoint() returns None). The manifest inside holds the step.
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(str(tmp)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
