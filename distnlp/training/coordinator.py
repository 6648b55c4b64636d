"""Committed checkpoints on a filesystem (docs/architecture.md, "Checkpoints").

Every rank hands its own state (data cursor, RNG) to rank 0 through a collective; rank 0 writes
the whole checkpoint into `step-N.tmp/`, then the manifest, then renames it to `step-N/`: that
rename is the commit. Only committed checkpoints of this run are resumed from, newest first; one
whose checksums do not match is skipped with a warning naming the bad file. The last `keep` are
kept.
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from . import checkpoint as ckpt
from .run_identity import RunIdentity, committed_checkpoints

log = logging.getLogger(__name__)

Gather = Callable[[Any], list[Any]]


def _local_gather(obj: Any) -> list[Any]:
    return [obj]


@dataclass(frozen=True)
class FailureInjection:
    """Testing aid (distributed.fail_at_step / fail_in_checkpoint): die as a crashed worker would."""

    step: int | None = None
    in_checkpoint: bool = False
    armed: bool = True  # never on a resumed run, so the resumed run can finish

    def at_step(self, step: int, rank: int, world_size: int) -> None:
        if self.armed and not self.in_checkpoint and self.step is not None and step == self.step and rank == world_size - 1:
            os._exit(1)

    def in_commit(self, step: int) -> None:
        """Called by the writing rank after the per-rank files, before the commit."""
        if self.armed and self.in_checkpoint and self.step is not None and step == self.step:
            os._exit(1)


def write_checkpoint(root: Path, *, step: int, world_size: int, identity: RunIdentity | None, nlp: Any, optimizer: Any, averages: Any,
                     states: list[Any], state: dict[str, Any], before_commit: Callable[[], None] | None = None) -> None:
    """Rank 0: everything of one checkpoint into `root` (manifest last). `world_size` counts
    replicas; the manifest's world_size counts data ranks (the rank directories), which differ
    only when a replica hosts several (distributed.keep_global_batch)."""
    ckpt.save_shared(root, nlp=nlp, optimizer=optimizer, averages=averages, state=state)
    states = ckpt.by_data_rank(states)
    ckpt.write_rank_states(root, states)
    if before_commit is not None:
        before_commit()
    info = {"step": step, "world_size": len(states), "replicas": world_size, **({"run_id": identity.run_id, "config_hash": identity.config_hash} if identity else {})}
    ckpt.write_manifest(root, info)


def restore_newest(candidates: Iterable[Path], load: Callable[[Path], dict[str, Any]], *, rank: int) -> dict[str, Any] | None:
    """Load the newest candidate whose files verify; skip (and name) corrupt ones."""
    for path in sorted(candidates, key=ckpt.manifest_step, reverse=True):
        try:
            ckpt.verify(path)
        except CheckpointError as exc:
            if rank == 0:
                log.warning("skipping checkpoint %s: %s; trying the previous one", path.name, exc)
            continue
        state = load(path)
        if rank == 0:
            log.info("resumed from %s (step %s)", path, state.get("step"))
        return state
    return None


class FileCoordinator:
    def __init__(
        self,
        directory: str | Path,
        *,
        rank: int = 0,
        world_size: int = 1,
        keep: int = 3,
        gather: Gather = _local_gather,
        identity: RunIdentity | None = None,
        failure: FailureInjection | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.rank, self.world_size, self.keep = rank, world_size, keep
        self.gather = gather
        self.identity = identity
        self.failure = failure or FailureInjection()

    def committed(self) -> list[Path]:
        """This run's committed checkpoints, oldest first."""
        if self.identity is None:
            return sorted(p for p in self.dir.glob("step-*") if p.is_dir() and ckpt.is_complete(p)) if self.dir.exists() else []
        return committed_checkpoints([self.dir], self.identity.run_id)

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        def load(path: Path) -> dict[str, Any]:
            return ckpt.load(path, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)

        state = restore_newest(self.committed(), load, rank=self.rank)
        if state is None and self.identity is not None and self.identity.resume:
            raise CheckpointError(f"{self.dir}: no committed checkpoint of run {self.identity.run_id} could be loaded (see the warnings above); "
                                  "start the run again with overwrite=true")
        return state

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        if self.rank != 0:
            return
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # a crashed attempt at this step: ours (the name is distnlp's)
        tmp.mkdir(parents=True)
        write_checkpoint(tmp, step=step, world_size=self.world_size, identity=self.identity, nlp=nlp, optimizer=optimizer,
                         averages=averages, states=states, state=state, before_commit=lambda: self.failure.in_commit(step))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in self.committed()[: -self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
