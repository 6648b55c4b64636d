"""Schedules: a value as a function of the optimizer step (learning rates, batch sizes, grad factors).

Every schedule is a callable `schedule(step: int) -> float`. Plain numbers become constants, so
any setting that takes a schedule also takes a float (`grad_factor: 0.5`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .registry import schedules

Schedule = Callable[[int], float]


class Constant:
    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"constant({self.value})"


@schedules("distnlp.constant.v1")
def constant(value: float) -> Schedule:
    return Constant(value)


@schedules("distnlp.compounding.v1")
def compounding(start: float, stop: float, compound: float) -> Schedule:
    """start * compound**step, clipped at stop (spaCy's compounding.v1, used for batch sizes)."""

    def schedule(step: int) -> float:
        value = start * compound**step
        return min(value, stop) if stop >= start else max(value, stop)

    return schedule


@schedules("distnlp.warmup_linear.v1")
def warmup_linear(initial_rate: float, warmup_steps: int, total_steps: int) -> Schedule:
    """Linear warmup from 0 to initial_rate, then linear decay to 0 at total_steps."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return initial_rate * (step + 1) / max(1, warmup_steps)
        frac = (total_steps - step) / max(1, total_steps - warmup_steps)
        return initial_rate * max(0.0, frac)

    return schedule


@schedules("distnlp.warmup_cosine.v1")
def warmup_cosine(initial_rate: float, warmup_steps: int, total_steps: int, min_rate: float = 0.0) -> Schedule:
    """Linear warmup, then cosine decay to min_rate at total_steps."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return initial_rate * (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_rate + (initial_rate - min_rate) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


@schedules("distnlp.frozen_then.v1")
def frozen_then(frozen_steps: int, value: float = 1.0) -> Schedule:
    """0 for the first frozen_steps steps, then value: freeze a shared layer, then train it."""

    def schedule(step: int) -> float:
        return 0.0 if step < frozen_steps else float(value)

    return schedule


@schedules("distnlp.linear_ramp.v1")
def linear_ramp(warmup_steps: int, value: float = 1.0) -> Schedule:
    """Ramp linearly from 0 to value over warmup_steps, then stay at value."""

    def schedule(step: int) -> float:
        return float(value) * min(1.0, step / max(1, warmup_steps))

    return schedule


def as_schedule(value: Any, path: str = "") -> Schedule:
    """A float, or an already-built schedule (a callable)."""
    if callable(value):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    raise ConfigError(path, f"expected a number or a schedule, got {value!r}", "use a float or {_use_: distnlp.warmup_linear.v1, ...}")
