"""One optimizer step, for every objective: the pipeline's heads or a pretraining objective.

Forward every sub-batch, divide each loss sum by its *global* item count for the step (all
sub-batches, all ranks; reduced before any backward), one backward per sub-batch, reduce the
gradients, check they are finite, clip by global norm, update. The gradient then equals that of
one process seeing the whole global batch (docs/architecture.md, "The equivalence contract").

Gradients are reset to None, not zero, at the start of the step: a parameter no loss reached
(a head without labels in this step, a frozen encoder) keeps `grad = None` and the optimizer
leaves it alone, on one process and, through the reducer's presence flags, on N replicas.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import DistnlpError


class Reducer(Protocol):
    """How a step talks to other replicas: identity on one process (LocalReducer), all-reduce
    when distributed (distributed/grad_sync.GradAllReducer). Every method a caller uses is here."""

    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor: ...

    def zero_grads(self, optimizer: torch.optim.Optimizer) -> None:
        """A new step's gradients: None on one process; zeroed views into the buckets the
        all-reduce sends, when distributed (so nothing is copied in or out)."""

    def final_backward(self, is_final: bool, loss: torch.Tensor | None = None) -> None:
        """Before each sub-batch's backward: whether it is the step's last (gradients complete),
        and the loss it differentiates (None: no backward follows)."""

    def sum_grads(self, params: Sequence[nn.Parameter]) -> torch.Tensor | None:
        """Sum the gradients; returns per-parameter presence flags still on the device (or None)."""

    def drop_absent(self, present: Sequence[bool]) -> None:
        """After the step's read-back: forget the gradients no rank had (the flags above)."""

    def gather_objects(self, obj: Any) -> list[Any]: ...

    def close(self) -> None: ...


class LocalReducer:
    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor:
        return counts

    def zero_grads(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def final_backward(self, is_final: bool, loss: torch.Tensor | None = None) -> None:
        return None

    def sum_grads(self, params: Sequence[nn.Parameter]) -> torch.Tensor | None:
        return None

    def drop_absent(self, present: Sequence[bool]) -> None:
        return None

    def close(self) -> None:
        return None

    def gather_objects(self, obj: Any) -> list[Any]:
        return [obj]


class StepObjective(Protocol):
    """What a step needs from an objective (see training/objective.py for the whole protocol)."""

    model: nn.Module
    loss_names: list[str]

    def count(self, sub_batch: Any) -> list[float]: ...

    def losses(self, sub_batch: Any, step: int) -> dict[str, torch.Tensor]: ...

    def words(self, sub_batch: Any) -> int: ...


class NonFiniteError(DistnlpError):
    """A loss or the gradient norm became NaN or infinite."""


@dataclass
class StepResult:
    losses: dict[str, float] = field(default_factory=dict)  # global loss sums per loss name
    counts: dict[str, int] = field(default_factory=dict)  # global labelled items per loss name
    words: int = 0  # global words in this step
    grad_norm: float = 0.0
    skipped: bool = False  # non-finite and nonfinite=skip: no update was made
    extra_sums: list[float] = field(default_factory=list)  # the caller's `extra_sums`, summed over ranks
    # Where this step's wall time went, in seconds (for the scaling benchmark).
    time_compute: float = 0.0  # counts reduce + forward + backward of every sub-batch
    time_reduce: float = 0.0  # waiting for the gradient all-reduce after the last backward
    time_update: float = 0.0  # norm, clipping + optimizer step

    def mean_loss(self, name: str) -> float:
        return self.losses[name] / max(1, self.counts.get(name, 0))


def optimizer_step(
    objective: StepObjective,
    sub_batches: Sequence[Any],
    *,
    step: int,
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    reducer: Reducer | None = None,
    nonfinite: str = "error",
    extra_sums: Sequence[float] = (),
) -> StepResult:
    """`extra_sums`: the caller's own numbers to sum over ranks (the loop's "my share of the
    epoch is done"), carried by the step's reduce and read back with its one transfer."""
    reducer = reducer or LocalReducer()
    t0 = time.perf_counter()
    names = list(objective.loss_names)
    # Item counts are host numbers (an objective counts its targets before they go to the
    # device), so the divisors need no transfer back; they stay where the reduce left them.
    local = torch.zeros(len(names), dtype=torch.float64)
    for sub in sub_batches:
        local += torch.tensor(objective.count(sub), dtype=torch.float64)
    global_counts = reducer.sum_counts(local)
    # One copy to where the losses are, not one per loss and sub-batch.
    model_device = next((p.device for p in objective.model.parameters()), global_counts.device)
    denom = global_counts.clamp(min=1.0).to(model_device)

    reducer.zero_grads(optimizer)
    loss_sums: list[torch.Tensor | float] = [0.0] * len(names)  # device tensors: read once, at the end
    words = 0
    for i, sub in enumerate(sub_batches):
        total = None
        for name, loss_sum in objective.losses(sub, step).items():
            k = names.index(name)
            term = loss_sum / denom[k].to(loss_sum.dtype)
            total = term if total is None else total + term
            loss_sums[k] = loss_sums[k] + loss_sum.detach().to(torch.float64)
        backward = total is not None and total.requires_grad
        reducer.final_backward(i == len(sub_batches) - 1, total if backward else None)
        if backward:
            total.backward()
        words += objective.words(sub)
    params = [p for p in objective.model.parameters() if p.requires_grad]
    t1 = time.perf_counter()
    present = reducer.sum_grads(params)
    t2 = time.perf_counter()
    # Global loss sums and words: for the log, and so every rank takes the same finite/skip decision.
    device = next((v.device for v in loss_sums if isinstance(v, torch.Tensor)), global_counts.device)
    local_totals = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device)
                                for v in (*loss_sums, float(words), *map(float, extra_sums))])
    totals = reducer.sum_counts(local_totals)
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=totals.device)
    # The step's one transfer to the host: loss sums, words, extra sums, the norm, the counts and
    # the reducer's presence flags together.
    parts = [totals, norm.reshape(1).to(totals.device, torch.float64), global_counts.to(totals.device)]
    if present is not None:
        parts.append(present.to(totals.device, torch.float64))
    host = torch.cat(parts).tolist()
    n, e = len(names), len(extra_sums)
    losses = {name: host[i] for i, name in enumerate(names)}
    words_total, extra, grad_norm = host[n], host[n + 1 : n + 1 + e], host[n + 1 + e]
    counts = host[n + 2 + e : 2 * n + 2 + e]
    if present is not None:
        reducer.drop_absent([v > 0.5 for v in host[2 * n + 2 + e :]])
    skipped = False
    if not (math.isfinite(grad_norm) and all(math.isfinite(v) for v in losses.values())):
        if nonfinite != "skip":
            raise NonFiniteError(_nonfinite_message(objective, step, losses, grad_norm))
        optimizer.zero_grad(set_to_none=True)
        skipped = True
    else:
        if grad_clip and grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
        optimizer.step()
    t3 = time.perf_counter()
    return StepResult(
        losses=losses,
        counts={name: int(counts[i]) for i, name in enumerate(names)},
        words=int(words_total),
        grad_norm=grad_norm,
        skipped=skipped,
        extra_sums=extra,
        time_compute=t1 - t0,
        time_reduce=t2 - t1,
        time_update=t3 - t2,
    )


def _nonfinite_message(objective: StepObjective, step: int, losses: dict[str, float], grad_norm: float) -> str:
    bad = [name for name, value in losses.items() if not math.isfinite(value)]
    if bad:
        where = f"the loss of {', '.join(bad)} is {losses[bad[0]]}"
    else:
        params = [n for n, p in objective.model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        owners = sorted({".".join(n.split(".")[:2]) for n in params})
        where = f"the gradient norm is {grad_norm} (non-finite gradients in {', '.join(owners[:4]) or 'unknown parameters'})"
    return (f"step {step + 1}: {where}; stopped instead of training on it "
            "(lower the learning rate or check the data; nonfinite=skip drops such steps instead)")
