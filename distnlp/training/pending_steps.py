"""Steps whose numbers are still on the device, read together at the loop's read points.

A step leaves its loss sums, gradient norm and non-finite flag on the device
(training/step.py), so on a GPU the host queues the next step without waiting for this one.
The loop reads them where it needs them anyway: on a logging step, at a save point, at the end.
One transfer then brings back every pending step's numbers; a non-finite step among them stops
the run (nonfinite=error: its update was already skipped on the device, so no weight has
trained on it) or is counted as skipped (nonfinite=skip).
"""
from __future__ import annotations

import torch

from .step import NonFiniteError, StepResult


class PendingSteps:
    def __init__(self, nonfinite: str) -> None:
        self.nonfinite = nonfinite
        self._steps: list[StepResult] = []

    def add(self, result: StepResult) -> None:
        self._steps.append(result)

    def read(self) -> int:
        """Read every pending step's numbers in one transfer; raise NonFiniteError naming the
        first non-finite step (nonfinite=error), else return how many were skipped."""
        unread = [r for r in self._steps if r.host is None]
        if unread:
            for result, host in zip(unread, torch.stack([r.numbers for r in unread]).tolist()):
                result.host = host
        steps, self._steps = self._steps, []
        skipped = [r for r in steps if r.skipped]
        if skipped and self.nonfinite != "skip":
            raise NonFiniteError(skipped[0].nonfinite_message())
        return len(skipped)
