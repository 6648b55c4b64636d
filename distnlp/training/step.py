"""One optimizer step: forward every sub-batch, token-weighted loss, one backward per sub-batch,
gradient reduce, clip by global norm, optimizer update.

Losses are sums over items; each head's sum is divided by its *global* item count for the step
(all sub-batches, all ranks), so the gradient equals that of one process seeing the whole global
batch (DESIGN.md decision 3). The counts are reduced before the backward pass.
"""
from __future__ import annotations

from collections.abc import Sequence
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from ..pipeline.pipeline import Batch, Pipeline


class Reducer(Protocol):
    """How a step talks to other replicas: identity on one process, all-reduce when distributed."""

    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor: ...

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None: ...


class LocalReducer:
    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor:
        return counts

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None:
        return None


@dataclass
class StepResult:
    losses: dict[str, float] = field(default_factory=dict)  # mean loss per item, per component
    counts: dict[str, int] = field(default_factory=dict)  # global labelled items per component
    words: int = 0  # local words in this step
    grad_norm: float = 0.0
    # Where this step's wall time went, in seconds (for the scaling benchmark).
    time_compute: float = 0.0  # counts reduce + forward + backward of every sub-batch
    time_reduce: float = 0.0  # waiting for the gradient all-reduce after the last backward
    time_update: float = 0.0  # clipping + optimizer step


def train_step(
    nlp: Pipeline,
    sub_batches: Sequence[Batch],
    *,
    step: int,
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    reducer: Reducer | None = None,
) -> StepResult:
    reducer = reducer or LocalReducer()
    t0 = time.perf_counter()
    names = nlp.pipe_names
    # Global labelled-item counts per head, known before any backward pass.
    local = torch.zeros(len(names), dtype=torch.float64)
    for batch in sub_batches:
        for i, name in enumerate(names):
            local[i] += _count(nlp, name, batch)
    global_counts = reducer.sum_counts(local)
    denom = {name: max(1.0, float(global_counts[i])) for i, name in enumerate(names)}

    optimizer.zero_grad(set_to_none=False)
    loss_sums = {name: 0.0 for name in names}
    words = 0
    mark_final = getattr(reducer, "final_backward", None)
    for i, batch in enumerate(sub_batches):
        if mark_final is not None:
            mark_final(i == len(sub_batches) - 1)
        losses = nlp.losses(batch, step)
        total = None
        for name, (loss_sum, _) in losses.items():
            term = loss_sum / denom[name]
            total = term if total is None else total + term
            loss_sums[name] += float(loss_sum.detach())
        if total is not None and total.requires_grad:
            total.backward()
        words += batch.num_words
    params = [p for p in nlp.parameters() if p.requires_grad]
    t1 = time.perf_counter()
    reducer.sum_grads(params)
    t2 = time.perf_counter()
    grad_norm = 0.0
    if grad_clip and grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    optimizer.step()
    t3 = time.perf_counter()
    return StepResult(
        losses={name: loss_sums[name] for name in names},
        counts={name: int(global_counts[i]) for i, name in enumerate(names)},
        words=words,
        grad_norm=grad_norm,
        time_compute=t1 - t0,
        time_reduce=t2 - t1,
        time_update=t3 - t2,
    )


def _count(nlp: Pipeline, name: str, batch: Batch) -> int:
    """Labelled items of one head in a batch (tokens with a label, or docs with cats)."""
    return nlp.components[name].count(batch.targets[name])
