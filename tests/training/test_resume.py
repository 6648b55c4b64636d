"""A killed run resumed from its last committed checkpoint continues exactly: the same batches,
the same losses, as a run that was never interrupted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.stream import DocStream
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable, "-m", "distnlp.cli.main", "train",
        f"training.output_dir={out}", "encoder.width=32", "training.max_steps=30", "training.eval_frequency=10",
        "training.log_every=1", "distributed.num_threads=1", "training.max_eval_docs=3", *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True)


def _step_losses(out: Path) -> dict[int, dict[str, float]]:
    losses: dict[int, dict[str, float]] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "step":
            losses[record["step"]] = record["losses"]  # the last attempt at a step wins
    return losses


def test_killed_run_resumes_exactly(tmp_path: Path) -> None:
    straight = _train(tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    killed = _train(tmp_path / "b", "distributed.fail_at_step=15")
    assert killed.returncode != 0
    committed = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert committed == ["step-00000010"], committed  # step 20 never happened; no .tmp left behind
    resumed = _train(tmp_path / "b", "training.resume=true", "distributed.fail_at_step=15")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 10" in resumed.stdout
    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 31))
    for step in range(11, 31):
        for name, value in a[step].items():
            assert abs(b[step][name] - value) <= 1e-4 * max(1.0, abs(value)), (step, name, a[step], b[step])


def test_batches_resume_exactly_with_pending_docs() -> None:
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 500, "tolerance": 0.5})

    def fresh() -> ResumableBatches:
        return ResumableBatches(DocStream(DEMO_DATA / "train", seed=3, infinite=True), batcher)

    straight = fresh()
    reference = []
    for i in range(40):
        if i in (7, 19):
            straight.restart()  # what a checkpoint does
        reference.append([d.doc_id for d in next(straight)])
    run = fresh()
    got = [[d.doc_id for d in next(run)] for _ in range(7)]
    state = json.loads(json.dumps(run.state_dict()))
    resumed = fresh()
    resumed.load_state_dict(state)
    got += [[d.doc_id for d in next(resumed)] for _ in range(12)]
    resumed.restart()
    got += [[d.doc_id for d in next(resumed)] for _ in range(21)]
    assert got == reference
