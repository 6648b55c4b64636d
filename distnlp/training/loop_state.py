"""What the one loop (training/engine.py) carries across checkpoints and tells its objective at a
save point: plain data, so the objective protocol can name them without importing the loop."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LoopState:
    """What the loop carries across checkpoints (the objective keeps its own part in `extra`)."""

    step: int = 0
    epoch: int = 0  # epochs every rank has finished
    batch_in_epoch: int = 0
    words: int = 0  # global words trained on
    skipped_steps: int = 0
    best_score: float | None = None
    best_step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoopState":
        known = {k: data[k] for k in asdict(cls()) if k in data}
        return cls(**known)


@dataclass
class SavePoint:
    """What the objective is told at a save point."""

    epoch_done: bool  # an epoch ended with this step (on every rank)
    finished_epoch: int  # the epoch that ended, when epoch_done
    last: bool  # the run stops after this save point (max_steps or max_epochs)
