"""Where a worker runs: its rank among the replicas and its device. Plain ints and strings."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0
