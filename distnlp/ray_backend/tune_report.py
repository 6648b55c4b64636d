"""How a `distnlp tune` trial tells Ray Tune its score: one Tune result per evaluation, so ASHA
compares trials evaluation by evaluation (`cli/tune.py`).

A trial trained in its own Tune process reports through a tracker (`training.loggers`, rank 0
only, fed every metrics.jsonl record); a trial trained on its own Ray Train replicas reports
through a Ray Train callback on the trial's side, fed what rank 0 reports with each checkpoint
(an evaluation and a checkpoint are one save point: `training/engine.py`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..registry import loggers

TUNE_REPORT = "distnlp.tune_report.v1"
# What every Tune result carries: the configured score (training.score_weights), the step and
# the epoch. ASHA's time axis is Tune's own `training_iteration`: the number of evaluations.
RESULT_KEYS = ("score", "step", "epoch")


def tune_result(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Tune result of a metrics.jsonl record or a checkpoint report; None where it has no score."""
    if record.get("event", "eval") != "eval" or not isinstance(record.get("score"), (int, float)):
        return None
    return {k: record[k] for k in RESULT_KEYS if k in record}


class TuneReportTracker:
    """In the trial's own process: every scored evaluation becomes `ray.tune.report`. Tune may
    end the trial inside that call (ASHA's stop), which is why it is the last thing logged."""

    name = "tune"

    def start(self, output_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        pass

    def log(self, record: Mapping[str, Any]) -> None:
        from ray import tune  # lazy: only trials of `distnlp tune` use this tracker

        result = tune_result(record)
        if result is not None:
            tune.report(result)

    def finish(self, model_dir: Path | None) -> None:
        pass


loggers.register(TUNE_REPORT, TuneReportTracker)


def train_to_tune_callback() -> Any:
    """For a trial trained on Ray Train replicas: rank 0's checkpoint reports, as Tune results."""
    from ray.train.v2.api.callback import UserCallback
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session
    from ray.train._internal.session import get_session

    if not _in_tune_session():
        raise RuntimeError("train_to_tune_callback: not in a Tune trial")
    queue = get_session()._get_or_create_inter_actor_queue()

    class ScoredReports(UserCallback):
        # Ray's TuneReportCallback forwards every report; a save point without an evaluation
        # (no score) would reach ASHA as a result without its metric.
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            result = tune_result(metrics[0]) if metrics else None
            if result is not None:
                queue.put(result)

    return ScoredReports()
