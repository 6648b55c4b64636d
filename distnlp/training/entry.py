"""What a launcher runs: `distnlp train` (the pipeline's objective) or `distnlp pretrain` (the
embedding's). The launcher names the entry; the one loop (`run_objective`) runs any of them.

An entry is plain data plus two functions, so the loop never imports what builds an objective
above it (pretrain/entry.py defines pretraining's)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .console import Console
from .env import WorkerEnv
from .objective import Objective
from ..config.settings import RunSettings


@dataclass(frozen=True)
class Entry:
    name: str  # "train", "pretrain": what a Ray worker is told to run, and the run's kind on disk
    section: str  # the config section of its loop settings ("training", "pretrain")
    settings: Callable[[Mapping[str, Any]], RunSettings]  # the launcher builds them once, from the composed config
    objective: Callable[[Mapping[str, Any], RunSettings, WorkerEnv, Console | None], Objective]
