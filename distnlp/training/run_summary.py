"""One line per run from its metrics.jsonl: final and best score, the step of the best, and the
scores at the best evaluation. `distnlp report` and the sweep summary print these tables."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics_log import RunMetrics


@dataclass
class RunSummary:
    label: str
    steps: int | None = None  # the last evaluated step
    final_score: float | None = None
    best_score: float | None = None
    best_step: int | None = None
    scores: dict[str, float] = field(default_factory=dict)  # at the best evaluation
    final_scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, label: str, metrics: RunMetrics) -> "RunSummary":
        best, final = metrics.best, metrics.final
        if best is None or final is None:
            return cls(label)
        return cls(label, steps=final["step"], final_score=final["score"], best_score=best["score"], best_step=best["step"],
                   scores=_numbers(best.get("scores")), final_scores=_numbers(final.get("scores")))


def _numbers(scores: Any) -> dict[str, float]:
    return {k: float(v) for k, v in (scores or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_runs_table(runs: Sequence[RunSummary], extra: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """A plain-text table: run, steps, final and best score (in %), best step, the scores at the
    best evaluation. `extra` adds leading columns (header, one cell per run), e.g. overrides."""
    names: list[str] = []
    for run in runs:
        names += [n for n in run.scores if n not in names]
    headers = ["RUN", *[h for h, _ in extra], "STEPS", "FINAL", "BEST", "BEST@", *[n.upper() for n in names]]
    rows = []
    for i, run in enumerate(runs):
        rows.append([run.label, *[cells[i] for _, cells in extra], _int(run.steps), _pct(run.final_score), _pct(run.best_score),
                     _int(run.best_step), *[_pct(run.scores.get(n)) for n in names]])
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(headers)]
    lead = 1 + len(extra)  # text columns, left-aligned

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < lead else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)
