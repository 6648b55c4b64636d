"""`distnlp pretrain` as an entry of the one loop: its settings (the `pretrain` section) and its
objective (pretrain/objective.py)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..training.entry import Entry
from ..training.env import WorkerEnv
from ..training.loop import run_objective
from ..config.settings import pretrain_run
from .objective import PretrainObjective

PRETRAIN = Entry("pretrain", "pretrain", pretrain_run, PretrainObjective)


def run_pretrain_worker(config: Mapping[str, Any], env: WorkerEnv | None = None, **kwargs: Any) -> dict[str, Any]:
    """Pretrain the configured layer on `corpus.raw_text`; returns a summary (the one loop of
    training/engine.py with the objective of pretrain/objective.py)."""
    return run_objective(config, PRETRAIN, env, **kwargs)
