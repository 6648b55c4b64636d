"""The main job under Ray prints what a single-process run prints: the console table once (rank
0's rows, relayed to the driver, without Ray's worker prefixes) and none of Ray's own chatter."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
TINY = ["encoder.width=32", "training.max_steps=6", "training.eval_frequency=3", "training.max_eval_docs=3",
        "distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false", "distributed.num_cpus=2"]
# What Ray printed before (issue 15): its warnings and infos, Train's report lines, worker prefixes.
CHATTER = re.compile(r"PlacementGroupCleaner|TrainingReport|Reporting training result|\((RayTrainWorker|TrainController|pid=)"
                     r"|\b(INFO|WARNING) \S+\.py:\d+ --|Started a local Ray instance|Token authentication")


def table_rows(out: Path) -> list[tuple[str, str]]:
    """(epoch, step) of every evaluation the run logged in metrics.jsonl."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(str(r["epoch"]), str(r["step"])) for r in records if r["event"] == "eval"]


def run_main_job(out: Path, *extra: str) -> str:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "train", *TINY, f"training.output_dir={out}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_ray_main_job_prints_each_table_row_once_and_no_ray_chatter(tmp_path: Path) -> None:
    """Also, with training.loggers=[tensorboard], rank 0 alone writes the events: 2 replicas
    are one run in the tracker, each step logged once."""
    out = tmp_path / "run"
    text = run_main_job(out, "training.loggers=[tensorboard]", "training.log_every=1")
    lines = text.splitlines()
    rows = table_rows(out)
    assert [step for _, step in rows] == ["3", "6"]
    for epoch, step in rows:
        shown = [line for line in lines if re.match(rf"{epoch}\s+{step}\s", line)]
        assert len(shown) == 1, f"table row of step {step} printed {len(shown)} times:\n{text[-3000:]}"
    assert sum(line.startswith("E ") and "SCORE" in line for line in lines) == 1, text[-3000:]
    assert sum(line.startswith("stopped after 6 steps") for line in lines) == 1, text[-3000:]
    # rank 0's log lines come through once, as one process prints them (the demo has no textcat labels)
    assert sum(line.startswith("INFO distnlp.") and "textcat: the training corpus has no labels" in line for line in lines) == 1, text[-3000:]
    noise = [line for line in lines if CHATTER.search(line)]
    assert not noise, "Ray's chatter reached the user:\n" + "\n".join(noise[:20])
    from tests.training.test_trackers import _tensorboard_scalars

    assert len(list((out / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert [step for step, _ in _tensorboard_scalars(out / "tensorboard")["train/loss/tagger"]] == [1, 2, 3, 4, 5, 6]
