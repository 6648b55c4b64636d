"""Read a run's `metrics.jsonl` back: the step records (losses, learn rate, grad norm, words) and
the evaluation records (losses since the last evaluation, scores, words/s) that the training
logger appends. Curves (`curves.py`), `distnlp report` and sweep summaries all read it here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CorpusError, DistnlpError

METRICS_FILE = "metrics.jsonl"


@dataclass
class RunMetrics:
    """One run's records, in step order; a step logged twice (a resumed run repeats the steps
    after its last checkpoint) keeps its latest record."""

    path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        """The evaluation with the highest score (the earliest of equals, as the loop's best)."""
        best = None
        for record in self.evals:
            if best is None or record["score"] > best["score"]:
                best = record
        return best

    @property
    def final(self) -> dict[str, Any] | None:
        return self.evals[-1] if self.evals else None

    def score_names(self) -> list[str]:
        names: list[str] = []
        for record in self.evals:
            names += [n for n in record.get("scores", {}) if n not in names]
        return names

    def loss_names(self) -> list[str]:
        names: list[str] = []
        for record in self.steps or self.evals:
            names += [n for n in record.get("losses", {}) if n not in names]
        return names


def metrics_path(run_dir: str | Path) -> Path:
    """A run directory's metrics.jsonl (a path to the file itself is accepted too)."""
    path = Path(run_dir)
    return path if path.name == METRICS_FILE or path.is_file() else path / METRICS_FILE


def read_metrics(run_dir: str | Path) -> RunMetrics:
    path = metrics_path(run_dir)
    if not path.is_file():
        raise DistnlpError(f"{path}: no metrics.jsonl here (pass a training output directory, one that `distnlp train` wrote)")
    steps: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if line.endswith("\n"):
                    raise CorpusError(f"{path}:{number}", f"not a JSON line ({exc.msg})", "the file is damaged; remove that line") from None
                break  # the last line of a run still writing (or killed mid-write)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise CorpusError(f"{path}:{number}", "a record without an integer 'step'", "not a distnlp metrics file?")
            event = record.get("event")
            if event == "eval" and isinstance(record.get("score"), (int, float)):
                evals[record["step"]] = record
            elif event == "step":
                steps[record["step"]] = record
    return RunMetrics(path=path, steps=[steps[s] for s in sorted(steps)], evals=[evals[s] for s in sorted(evals)])
