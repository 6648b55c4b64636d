"""spaCy-style console table plus metrics as JSON lines."""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .console import Console
from .trackers import TrackerFanout


class TrainingLogger:
    def __init__(
        self,
        components: Sequence[str],
        score_names: Sequence[str],
        metrics_path: Path | None,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        console: Console | None = None,
    ) -> None:
        self.components = list(components)
        self.score_names = list(score_names)
        self.stream = stream or sys.stdout
        self.console = console  # when set, lines go there instead of `stream` (a Ray replica relays them)
        self.enabled = enabled
        self.metrics = open(metrics_path, "a", encoding="utf8") if (metrics_path and enabled) else None
        self.trackers: TrackerFanout | None = None  # training.loggers, fed every record metrics.jsonl gets
        self._header_done = False
        self.columns = (
            ["E", "#"]
            + [f"LOSS {c.upper()}"[:13] for c in self.components]
            + [s.upper()[:13] for s in self.score_names]
            + ["SCORE", "WORDS/S"]
        )
        self.widths = [max(5, len(c)) for c in self.columns]

    def _line(self, cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, self.widths)))

    def print(self, text: str) -> None:
        if not self.enabled:
            return
        if self.console is not None:
            self.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def header(self) -> None:
        if self._header_done or not self.enabled:
            return
        self._header_done = True
        self.print(self._line(self.columns))
        self.print(self._line(["-" * w for w in self.widths]))

    def log_eval(self, info: Mapping[str, Any]) -> None:
        """info: epoch, step, losses{comp}, scores{name}, score, words_per_second."""
        self.header()
        scores = info.get("scores", {})
        cells = [str(info["epoch"]), str(info["step"])]
        cells += [f"{info['losses'].get(c, 0.0):.2f}" for c in self.components]
        cells += [_fmt_score(scores.get(s)) for s in self.score_names]
        cells += [f"{100 * info['score']:.2f}", f"{info.get('words_per_second', 0):.0f}"]
        self.print(self._line(cells))
        self.write_json({"event": "eval", **info})

    def write_json(self, record: Mapping[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(json.dumps(record, default=_jsonable) + "\n")
            self.metrics.flush()
        if self.trackers is not None:
            self.trackers.log(record)

    def close(self, best_model: Path | None = None) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.trackers is not None:
            self.trackers.finish(best_model)


def _fmt_score(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{100 * value:.2f}"
    return "-"


def _jsonable(obj: Any) -> Any:
    try:
        return float(obj)
    except Exception:
        return str(obj)


def format_scores_table(scores: Mapping[str, Any]) -> str:
    """A two-column table of the numeric scores (distnlp evaluate)."""
    rows = [(k, v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    width = max((len(k) for k, _ in rows), default=10)
    lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  ------"]
    for k, v in rows:
        shown = f"{v:.0f}" if k in ("speed", "words") else f"{100 * v:.2f}"
        lines.append(f"{k.ljust(width)}  {shown}")
    for key, title in (("ents_per_type", "entity"), ("dep_las_per_type", "dep (LAS)")):
        per_type = scores.get(key)
        if isinstance(per_type, Mapping) and per_type:
            lines.append("")
            lines.append(f"{title.ljust(width)}  p       r       f")
            for label, prf in per_type.items():
                lines.append(f"{label.ljust(width)}  {100 * prf['p']:.2f}  {100 * prf['r']:.2f}  {100 * prf['f']:.2f}")
    return "\n".join(lines)
