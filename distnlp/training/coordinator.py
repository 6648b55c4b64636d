"""Committed checkpoints on a filesystem (DESIGN.md decision 7).

Every rank hands its own state (data cursor, RNG) to rank 0 through a collective; rank 0 writes
the whole checkpoint into `step-N.tmp/`, then the manifest, then renames it to `step-N/`: that
rename is the commit. Only committed checkpoints are resumed from, so a crash mid-write never
leaves one that looks finished. The last `keep` are kept.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt

log = logging.getLogger(__name__)

Gather = Callable[[Any], list[Any]]


def _local_gather(obj: Any) -> list[Any]:
    return [obj]


def write_checkpoint(root: Path, *, step: int, world_size: int, nlp: Any, optimizer: Any, averages: Any, states: list[Any], state: dict[str, Any]) -> None:
    """Rank 0: everything of one checkpoint into `root` (manifest last)."""
    ckpt.save_shared(root, nlp=nlp, optimizer=optimizer, averages=averages, state=state)
    ckpt.write_rank_states(root, states)
    ckpt.write_manifest(root, {"step": step, "world_size": world_size})


class FileCoordinator:
    def __init__(
        self,
        directory: str | Path,
        *,
        rank: int = 0,
        world_size: int = 1,
        keep: int = 3,
        gather: Gather = _local_gather,
        resume: bool = True,
    ) -> None:
        self.dir = Path(directory)
        self.rank, self.world_size, self.keep = rank, world_size, keep
        self.gather = gather
        self.resume = resume

    def committed(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and ckpt.is_complete(p))

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        done = self.committed() if self.resume else []
        if not done:
            return None
        latest = done[-1]
        state = ckpt.load(latest, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)
        if self.rank == 0:
            log.info("resumed from %s (step %s)", latest, state.get("step"))
        return state

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        states = self.gather(ckpt.rank_state(stream))
        if self.rank != 0:
            return
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        write_checkpoint(tmp, step=step, world_size=self.world_size, nlp=nlp, optimizer=optimizer, averages=averages, states=states, state=state)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in self.committed()[: -self.keep] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
