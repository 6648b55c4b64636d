"""One optimizer step, for every objective: the pipeline's heads or a pretraining objective.

Forward every sub-batch, divide each loss sum by its *global* item count for the step (all
sub-batches, all ranks; summed on the host before any backward), one backward per sub-batch,
reduce the gradients, clip by global norm, update unless the norm or a loss is non-finite (on
the device). The gradient then equals that of one process seeing the whole global batch
(docs/architecture.md, "The equivalence contract").

Gradients are reset to None, not zero, at the start of the step: a parameter no loss reached
(a head without labels in this step, a frozen encoder) keeps `grad = None` and the optimizer
leaves it alone, on one process and, through the reducer's host-side presence sum, on N replicas.
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

    def sum_on_host(self, values: Sequence[float]) -> list[float]:
        """Sum numbers the host holds (item counts, words) over the ranks, without the device."""

    def sum_on_device(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a device tensor (the loss sums) over the ranks; the result stays on the device."""

    def zero_grads(self, optimizer: torch.optim.Optimizer) -> None:
        """A new step's gradients: None on one process; zeroed views into the buckets the
        all-reduce sends, when distributed (so nothing is copied in or out)."""

    def final_backward(self, is_final: bool, loss: torch.Tensor | None = None) -> None:
        """Before each sub-batch's backward: whether it is the step's last (gradients complete),
        and the loss it differentiates (None: no backward follows)."""

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Sum the gradients; `grad = None` where no rank has one."""

    def gather_objects(self, obj: Any) -> list[Any]: ...

    def close(self) -> None: ...


class LocalReducer:
    def sum_on_host(self, values: Sequence[float]) -> list[float]:
        return list(values)

    def sum_on_device(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def zero_grads(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def final_backward(self, is_final: bool, loss: torch.Tensor | None = None) -> None:
        return None

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None:
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
    """A step's numbers. Counts, words and the caller's sums are host numbers, summed over the
    ranks on the host; the loss sums, the gradient norm and the non-finite flag stay on the
    device (`numbers`) until something reads them: `losses`, `grad_norm` and `skipped` read
    them on first use, and the loop reads many steps' at once (training/pending_steps.py)."""

    loss_names: list[str]
    step: int  # the step's index, as passed to optimizer_step
    numbers: torch.Tensor  # [global loss sums per loss name..., gradient norm, 1.0 if non-finite], float64
    counts: dict[str, int] = field(default_factory=dict)  # global labelled items per loss name
    words: int = 0  # global words in this step
    extra_sums: list[float] = field(default_factory=list)  # the caller's `extra_sums`, summed over ranks
    # Non-finite steps: the update is skipped on the device (fused optimizer) and the step named
    # from these, the parameters with a gradient and each one's gradient norm.
    param_names: list[str] = field(default_factory=list)
    param_norms: torch.Tensor | None = None
    # Where this step's wall time went, in seconds (for the scaling benchmark); on a GPU the
    # host's time to queue the work, as nothing here waits for the device.
    time_compute: float = 0.0  # counts reduce + forward + backward of every sub-batch
    time_reduce: float = 0.0  # waiting for the gradient all-reduce after the last backward
    time_update: float = 0.0  # norm, clipping + optimizer step
    host: list[float] | None = None  # `numbers` once read

    def read(self) -> "StepResult":
        """Bring `numbers` to the host (a device sync on a GPU), once."""
        if self.host is None:
            self.host = self.numbers.tolist()
        return self

    @property
    def loss_sums(self) -> torch.Tensor:
        """The global loss sums, on the device (to accumulate without reading)."""
        return self.numbers[: len(self.loss_names)]

    @property
    def kept_loss_sums(self) -> torch.Tensor:
        """The loss sums of a step that updated, zeros for a skipped one (running sums stay finite)."""
        return torch.where(self.applied > 0, self.loss_sums, torch.zeros_like(self.loss_sums))

    @property
    def applied(self) -> torch.Tensor:
        """1.0 where the update was made, 0.0 where a non-finite step was skipped; on the device."""
        return 1.0 - self.numbers[-1]

    @property
    def losses(self) -> dict[str, float]:
        host = self.read().host
        return {name: host[i] for i, name in enumerate(self.loss_names)}

    @property
    def grad_norm(self) -> float:
        return self.read().host[len(self.loss_names)]

    @property
    def skipped(self) -> bool:
        """Non-finite: no update was made."""
        return self.read().host[-1] > 0.5

    def mean_loss(self, name: str) -> float:
        return self.losses[name] / max(1, self.counts.get(name, 0))

    def nonfinite_message(self) -> str:
        losses, grad_norm = self.losses, self.grad_norm
        bad = [name for name, value in losses.items() if not math.isfinite(value)]
        if bad:
            where = f"the loss of {', '.join(bad)} is {losses[bad[0]]}"
        else:
            norms = self.param_norms.tolist() if self.param_norms is not None else []
            owners = sorted({".".join(n.split(".")[:2]) for n, v in zip(self.param_names, norms) if not math.isfinite(v)})
            where = f"the gradient norm is {grad_norm} (non-finite gradients in {', '.join(owners[:4]) or 'unknown parameters'})"
        return (f"step {self.step + 1}: {where}; stopped instead of training on it "
                "(lower the learning rate or check the data; nonfinite=skip drops such steps instead)")


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
    read_later: bool = False,
) -> StepResult:
    """`extra_sums`: the caller's own host numbers to sum over ranks (the loop's "my share of the
    epoch is done"), carried by the step's host sum.

    With a fused optimizer (training/optim.py builds one) a non-finite step's update is skipped
    on the device (the fused kernels' `found_inf`). With `read_later` (the loop) nothing is read
    back here: the caller raises or counts a non-finite step when it reads the step's numbers
    (training/pending_steps.py). Otherwise, and with any other optimizer, the step reads its
    numbers once, here, and raises at once under nonfinite=error."""
    reducer = reducer or LocalReducer()
    t0 = time.perf_counter()
    names = list(objective.loss_names)
    n = len(names)
    # Item counts and words are host numbers (an objective counts its targets before they go to
    # the device), so the divisors need no transfer back.
    local = [0.0] * (n + 1)
    for sub in sub_batches:
        for k, count in enumerate(objective.count(sub)):
            local[k] += float(count)
        local[n] += float(objective.words(sub))
    host = reducer.sum_on_host([*local, *map(float, extra_sums)])
    counts, words, extra = host[:n], host[n], host[n + 1 :]
    model_device = next((p.device for p in objective.model.parameters()), torch.device("cpu"))
    denom = torch.tensor([max(c, 1.0) for c in counts], dtype=torch.float64).to(model_device, non_blocking=True)

    reducer.zero_grads(optimizer)
    # Made on the device, not copied there: a blocking copy would wait for the device.
    local_loss_sums = torch.zeros(n, dtype=torch.float64, device=model_device)
    for i, sub in enumerate(sub_batches):
        total = None
        for name, loss_sum in objective.losses(sub, step).items():
            k = names.index(name)
            term = loss_sum / denom[k].to(loss_sum.dtype)
            total = term if total is None else total + term
            local_loss_sums[k].add_(loss_sum.detach().to(torch.float64))
        backward = total is not None and total.requires_grad
        reducer.final_backward(i == len(sub_batches) - 1, total if backward else None)
        if backward:
            total.backward()
    named = [(name, p) for name, p in objective.model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    t1 = time.perf_counter()
    reducer.sum_grads(params)
    t2 = time.perf_counter()
    # Global loss sums, so every rank takes the same finite/skip decision and logs the same numbers.
    loss_totals = reducer.sum_on_device(local_loss_sums)
    with_grad = [(name, p.grad) for name, p in named if p.grad is not None]
    norm, per_param = _grad_norms([g for _, g in with_grad], model_device)
    bad = ~(torch.isfinite(norm) & torch.isfinite(loss_totals).all())
    result = StepResult(loss_names=names, step=step, numbers=torch.cat([loss_totals, norm.reshape(1).to(torch.float64),
                                                                          bad.reshape(1).to(torch.float64)]),
                        counts={name: int(counts[k]) for k, name in enumerate(names)}, words=int(words), extra_sums=extra,
                        param_names=[name for name, _ in with_grad], param_norms=per_param)
    if skips_on_device(optimizer):
        if grad_clip and grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)  # a non-finite norm: skipped below anyway
        optimizer.found_inf = bad.to(torch.float32)  # type: ignore[attr-defined]  # the fused kernels skip where 1
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf  # type: ignore[attr-defined]
        if not read_later and result.skipped and nonfinite != "skip":  # read here: the caller will not
            raise NonFiniteError(result.nonfinite_message())
    elif result.skipped:  # the step's one transfer
        if nonfinite != "skip":
            raise NonFiniteError(result.nonfinite_message())
        optimizer.zero_grad(set_to_none=True)
    else:
        if grad_clip and grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
        optimizer.step()
    t3 = time.perf_counter()
    result.time_compute, result.time_reduce, result.time_update = t1 - t0, t2 - t1, t3 - t2
    return result


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Fused Adam/AdamW take `found_inf`: they skip the update, step count included, on the device."""
    return isinstance(optimizer, torch.optim.Adam) and all(group.get("fused") for group in optimizer.param_groups)


def _grad_norms(grads: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The total 2-norm of the gradients, computed as torch's get_total_norm does (per-tensor
    norms, then the norm of those), and the per-tensor norms, kept to name the parameters of a
    non-finite step without reading anything back now."""
    if not grads:
        return torch.zeros((), device=device), None
    per_param = torch.stack([norm.to(device) for norm in torch._foreach_norm(grads, 2.0)])
    return torch.linalg.vector_norm(per_param, 2.0), per_param
