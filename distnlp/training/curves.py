"""Training curves drawn from metrics.jsonl: `training_curves.png` beside it at every evaluation,
and several runs on shared axes for `distnlp report`.

matplotlib is imported here only, lazily, through its object API on the Agg canvas: no pyplot
global state, no display needed, and `import distnlp` stays light.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .metrics_log import RunMetrics, metrics_path, read_metrics

CURVES_FILE = "training_curves.png"
MAX_SCORE_PANELS = 6  # report: one panel per score name, up to this many

log = logging.getLogger(__name__)

Series = tuple[list[int], list[float]]
Panel = tuple[str, list[tuple[str, Series]]]  # title, (label, (steps, values)) per line


def redraw_run_curves(output_dir: str | Path) -> Path | None:
    """Redraw `training_curves.png` from the run's metrics.jsonl. A failure to draw is logged in
    one line and never stops training: the curves are a view, the metrics file is the record."""
    target = Path(output_dir) / CURVES_FILE
    try:
        draw_curves({Path(output_dir).name: read_metrics(metrics_path(output_dir))}, target)
    except Exception as exc:  # noqa: BLE001 (drawing must not end a run)
        log.warning("%s: training curves not drawn (%s: %s)", target, type(exc).__name__, exc)
        return None
    return target


def draw_curves(runs: Mapping[str, RunMetrics], target: str | Path) -> Path:
    """One run: losses per head, dev scores, words/s, learn rate, grad norm. Several runs: one
    line per run in every panel (the combined score, each score, the summed loss, ...)."""
    if len(runs) == 1:
        png = _render(_run_panels(next(iter(runs.values()))), title=f"{next(iter(runs))}: training curves")
    else:  # a run keeps its colour in every panel, also where another run logged nothing
        png = _render(_comparison_panels(runs), title=" vs ".join(runs), colors={label: f"C{i % 10}" for i, label in enumerate(runs)})
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)  # rendered in memory first: a reader never sees a half-written file
    return target


def _run_panels(run: RunMetrics) -> list[Panel]:
    loss_records = run.steps or run.evals
    # Per word where the record says how many words the step had: a loss sum follows the batch
    # size (one 5,000-word EWT doc batched alone spiked the curve), a loss per word does not.
    losses = [(name, _series(loss_records, lambda r, n=name: _per_word(r, r.get("losses", {}).get(n)))) for name in run.loss_names()]
    losses = losses or [("loss", _series(loss_records, lambda r: r.get("loss")))]  # pretraining logs one loss
    scores = [(name, _series(run.evals, lambda r, n=name: _percent(r.get("scores", {}).get(n)))) for name in run.score_names()]
    scores.append(("score", _series(run.evals, lambda r: _percent(r.get("score")))))
    return [
        ("loss per head" + (" (per word, logged steps)" if run.steps else " (per evaluation interval)"), losses),
        ("dev scores (%)", scores),
        ("words/s", [("words/s", _series(run.evals, lambda r: r.get("words_per_second")))]),
        ("learn rate", [("lr", _series(run.steps, lambda r: r.get("lr")))]),
        ("grad norm", [("grad norm", _series(run.steps, lambda r: r.get("grad_norm")))]),
    ]


def _comparison_panels(runs: Mapping[str, RunMetrics]) -> list[Panel]:
    def per_run(records: Callable[[RunMetrics], list[dict[str, Any]]], value: Callable[[dict[str, Any]], Any]) -> list[tuple[str, Series]]:
        return [(label, _series(records(run), value)) for label, run in runs.items()]

    names: list[str] = []
    for run in runs.values():
        names += [n for n in run.score_names() if n not in names]
    panels: list[Panel] = [("score (%)", per_run(lambda r: r.evals, lambda r: _percent(r.get("score"))))]
    panels += [(f"{name} (%)", per_run(lambda r: r.evals, lambda r, n=name: _percent(r.get("scores", {}).get(n))))
               for name in names[:MAX_SCORE_PANELS]]
    panels += [
        ("loss, all heads", per_run(lambda r: r.steps or r.evals, _total_loss)),
        ("words/s", per_run(lambda r: r.evals, lambda r: r.get("words_per_second"))),
        ("learn rate", per_run(lambda r: r.steps, lambda r: r.get("lr"))),
        ("grad norm", per_run(lambda r: r.steps, lambda r: r.get("grad_norm"))),
    ]
    return panels


def _series(records: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], Any]) -> Series:
    steps, values = [], []
    for record in records:
        v = value(record)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            steps.append(int(record["step"]))
            values.append(float(v))
    return steps, values


def _percent(value: Any) -> float | None:
    return 100 * value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _per_word(record: dict[str, Any], loss: float | None) -> float | None:
    words = record.get("words") if record.get("event") == "step" else None
    return loss / words if loss is not None and words else loss


def _total_loss(record: dict[str, Any]) -> float | None:
    losses = record.get("losses")
    if isinstance(losses, dict) and losses:
        return float(sum(losses.values()))
    return record.get("loss")  # pretraining logs one loss


def _render(panels: list[Panel], title: str, colors: Mapping[str, str] | None = None) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 3
    rows = -(-len(panels) // cols)
    height = 3.4 * rows
    fig = Figure(figsize=(5 * cols, height), dpi=80)
    FigureCanvasAgg(fig)
    # Fixed margins (in inches, so any number of rows reads the same): the constrained layout
    # cost 0.62 CPU-s per redraw of the demo run, these 0.36.
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.45 / height, top=1 - 0.75 / height, wspace=0.22, hspace=0.45)
    fig.suptitle(title, y=1 - 0.12 / height, va="top")
    for index, (name, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, index + 1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)  # a constant learn rate reads 0.001, not 0.00004 + 9.6e-4
        drawn = 0
        for label, (steps, values) in lines:
            if steps:
                marker = "o" if len(steps) < 30 else None
                ax.plot(steps, values, label=label, marker=marker, markersize=3, linewidth=2 if label == "score" else 1.2,
                        color=colors.get(label) if colors else None)
                drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "not logged yet", ha="center", va="center", transform=ax.transAxes, color="gray")
        elif len(lines) > 1:
            ax.legend(fontsize=7, loc="best", ncols=2 if len(lines) > 5 else 1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
