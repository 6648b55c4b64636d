"""Ray Train on a local Ray with 2 CPU workers: trains, commits checkpoints, survives a killed
worker (the group restarts from the last committed checkpoint) with the same loss curve as an
uninterrupted run; a resubmitted run (resume=true) continues that curve exactly."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")


def _config(out: Path, *extra: str) -> dict[str, Any]:
    from distnlp.cli.compose import compose_config
    from distnlp.config import validate_config

    config = compose_config(
        [
            "distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false",
            f"training.output_dir={out}", "encoder.width=32", "training.max_steps=24",
            "training.eval_frequency=8", "training.log_every=1", "training.max_eval_docs=4", "training.dropout=0.1",
            *extra,
        ]
    )
    validate_config(config)
    return config


def _step_losses(out: Path) -> dict[int, dict[str, float]]:
    losses: dict[int, dict[str, float]] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "step":
            losses[record["step"]] = record["losses"]
    return losses


def test_killed_worker_restarts_from_committed_checkpoint(local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distnlp.ray_backend.driver import train_on_ray

    straight = train_on_ray(_config(tmp_path / "a", "training.max_steps=32"))
    assert straight["metrics"]["step"] == 32
    capsys.readouterr()
    failed = train_on_ray(_config(tmp_path / "b", "distributed.fail_at_step=12"))
    assert failed["metrics"]["step"] == 24
    # The driver shows the failure and the restart, one line each, naming the worker that died.
    shown = capsys.readouterr().out.splitlines()
    failure = [line for line in shown if line.startswith("ray: worker")]
    assert len(failure) == 1 and failure[0].startswith("ray: worker 1 died") and "restart 1 of 1" in failure[0], shown
    assert sum(line == "resumed from the checkpoint of step 8" for line in shown) == 1, shown
    assert json.loads((Path(failed["checkpoint"]) / "manifest.json").read_text())["step"] == 24
    log = (tmp_path / "b" / "metrics.jsonl").read_text()
    steps = [json.loads(l)["step"] for l in log.splitlines() if '"event": "step"' in l]
    assert steps.count(9) == 2 and steps.count(13) == 1  # steps 9-12 ran twice: resumed from step 8
    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    for step in range(9, 25):
        for name, value in a[step].items():
            assert abs(b[step][name] - value) <= 1e-4 * max(1.0, abs(value)), (step, name, a[step], b[step])
    # The saved pipeline loads and annotates.
    import distnlp

    nlp = distnlp.load(tmp_path / "b" / "model-last")
    doc = nlp("The cat sat on the mat .")
    assert [t.tag_ for t in doc]
    assert "lemmatizer" in nlp.pipe_names and all(t.lemma_ for t in doc)  # trained on Ray replicas too

    # Resubmitting the same run (resume=true, same name + storage_path) continues from its last
    # checkpoint with the uninterrupted run's losses: nothing is re-run, nothing restarts at 0.
    again = train_on_ray(_config(tmp_path / "b", "training.max_steps=32", "training.resume=true"))
    assert again["metrics"]["step"] == 32
    log = (tmp_path / "b" / "metrics.jsonl").read_text()
    steps = [json.loads(l)["step"] for l in log.splitlines() if '"event": "step"' in l]
    assert steps.count(1) == 1 and steps.count(25) == 1 and steps.count(32) == 1
    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    for step in range(25, 33):
        for name, value in a[step].items():
            assert abs(b[step][name] - value) <= 1e-4 * max(1.0, abs(value)), (step, name, a[step], b[step])
    # A fresh run in that directory is refused (it holds a run), naming the way out.
    from distnlp.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds run .*training.resume=true.*training.overwrite=true"):
        train_on_ray(_config(tmp_path / "b"))
