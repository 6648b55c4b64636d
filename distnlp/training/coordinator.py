"""Committed checkpoints on a filesystem every rank can reach (DESIGN.md decision 7).

Each rank writes into `step-N.tmp/`, all ranks meet at a barrier, then rank 0 writes the
manifest and renames the directory: that rename is the commit. Only committed checkpoints are
resumed from, so a crash mid-write never leaves one that looks finished. The last `keep` are kept.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt

log = logging.getLogger(__name__)


class FileCoordinator:
    def __init__(
        self,
        directory: str | Path,
        *,
        rank: int = 0,
        world_size: int = 1,
        keep: int = 3,
        barrier: Callable[[], None] = lambda: None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.rank, self.world_size, self.keep = rank, world_size, keep
        self.barrier = barrier
        self.config = config or {}

    def committed(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and ckpt.is_complete(p))

    def restore(self, *, nlp: Any, optimizer: Any, averages: Any, stream: Any) -> dict[str, Any] | None:
        done = self.committed()
        if not done:
            return None
        latest = done[-1]
        state = ckpt.load(latest, self.rank, nlp=nlp, optimizer=optimizer, averages=averages, stream=stream, world_size=self.world_size)
        if self.rank == 0:
            log.info("resumed from %s (step %s)", latest, state.get("step"))
        return state

    def checkpoint(self, *, step: int, nlp: Any, optimizer: Any, averages: Any, stream: Any, state: dict[str, Any]) -> Path:
        final = self.dir / f"step-{step:08d}"
        tmp = self.dir / f"step-{step:08d}.tmp"
        if self.rank == 0:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.barrier()
        ckpt.save_rank(tmp, self.rank, stream=stream)
        if self.rank == 0:
            ckpt.save_shared(tmp, nlp=nlp, optimizer=optimizer, averages=averages, state=state)
        self.barrier()
        if self.rank == 0:
            ckpt.write_manifest(tmp, {"step": step, "world_size": self.world_size, "ranks": self.world_size})
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in self.committed()[: -self.keep] if self.keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        self.barrier()
        return final
