"""What the one loop (training/engine.py) asks of the thing it trains.

Two objectives exist: the pipeline's heads (training/pipeline_objective.py) and a pretraining
objective on the embedding layer (pretrain/objective.py). The loop owns stepping, stopping,
checkpoints and resume; the objective owns data, losses, evaluation, logging and saving.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ..data.doc import Doc
from .loop_state import LoopState, SavePoint
from .optim import ParameterAverages
from .step import Reducer, StepResult
from .virtual_ranks import DataRanks


class Objective(Protocol):
    model: nn.Module  # what the optimizer updates and checkpoints hold
    loss_names: list[str]  # one global item count and loss sum each, per step
    batches: DataRanks  # the data loader: training's and pretraining's alike

    def prepare(self, docs: list[Doc], parts: int) -> list[Any]:
        """Featurized sub-batches (accumulate_gradient parts) on the device."""

    def count(self, sub_batch: Any) -> list[float]:
        """Labelled items per loss name in one sub-batch."""

    def losses(self, sub_batch: Any, step: int) -> dict[str, torch.Tensor]:
        """Loss sums per loss name (divided by the global counts in the step)."""

    def words(self, sub_batch: Any) -> int: ...

    def start(self, state: LoopState, *, resumed: bool, averages: ParameterAverages | None) -> None:
        """Before the first step: write run files (rank 0), print the header, repair after a crash."""

    def after_step(self, state: LoopState, result: StepResult, *, lr: float, data_time: float) -> None:
        """Log the step."""

    def is_save_point(self, state: LoopState, point: SavePoint, batch_index: int) -> bool:
        """Evaluate, checkpoint and save after this step? (The last step always is one.)"""

    def evaluate(self, state: LoopState, averages: ParameterAverages | None, reducer: Reducer) -> float | None:
        """The score to maximise (every rank calls it; a collective), or None without evaluation."""

    def save(self, state: LoopState, point: SavePoint, averages: ParameterAverages | None) -> None:
        """Write what users load (rank 0), after the checkpoint of this step is committed."""

    def finish(self, state: LoopState, stop_reason: str) -> dict[str, Any]:
        """Close files, print the closing line; the run's summary."""
