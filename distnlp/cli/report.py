"""`distnlp report RUN_DIR [RUN_DIR ...]`: several runs' curves on shared axes, and their final and
best scores as one table, all read from each run's metrics.jsonl."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import DistnlpError
from ..training.curves import draw_curves
from ..training.metrics_log import metrics_path, read_metrics
from ..training.run_summary import RunSummary, format_runs_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare training runs: curves on shared axes and a table of final and best scores",
                       description="Read each run's metrics.jsonl, print one table (final and best score, the step of the best, "
                       "the scores at the best evaluation) and draw the runs' curves on shared axes.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training output directories (each holds metrics.jsonl), or a sweep's DIR for all its runs")
    p.add_argument("--output", "-o", default="report.png", help="the PNG to draw (default: report.png)")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    paths = [run for given in args.runs for run in expand_sweep(given)]
    labels = run_labels(paths)
    metrics = {label: read_metrics(path) for label, path in zip(labels, paths)}
    print(format_runs_table([RunSummary.of(label, m) for label, m in metrics.items()]))
    unevaluated = [label for label, m in metrics.items() if not m.evals]
    if unevaluated:
        print(f"not evaluated yet: {', '.join(unevaluated)}")
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise DistnlpError(f"--output {output}: the curves are a PNG image (name it e.g. {output.with_suffix('.png').name})")
    draw_curves(metrics, output)
    print(f"curves written to {output}")
    return 0


def expand_sweep(path: str) -> list[str]:
    """A sweep directory (DIR/sweep.json of `distnlp train -m` or `distnlp tune`) stands for its
    runs, in job (trial) order."""
    sweep = Path(path) / "sweep.json"
    if metrics_path(path).is_file() or not sweep.is_file():
        return [path]
    try:
        entries = json.loads(sweep.read_text())
        entries = entries["trials"] if isinstance(entries, dict) else entries  # distnlp tune: {..., "trials": [...]}
        return [str(Path(path) / Path(e["output_dir"]).name) for e in sorted(entries, key=lambda e: e["job"])]
    except (ValueError, TypeError, KeyError):
        raise DistnlpError(f"{sweep}: not a sweep summary written by `distnlp train -m` or `distnlp tune` (pass the runs' directories instead)") from None


def _name(path: Path) -> str:
    if path.name.isdigit() and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name or str(path)


def run_labels(paths: list[str]) -> list[str]:
    """Each run by its directory name (a sweep's job with its sweep: sweep/0), or by the path as
    given where names repeat."""
    names = [_name(Path(p)) for p in paths]
    if len(set(names)) == len(names):
        return names
    labels = [str(p).rstrip("/") for p in paths]
    if len(set(labels)) != len(labels):
        raise DistnlpError(f"the same run directory is given twice: {sorted({l for l in labels if labels.count(l) > 1})}")
    return labels
