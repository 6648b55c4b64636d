"""Exact resume (docs/architecture.md, "Exact resume" and "Runs"): a killed run resumed from its
last committed checkpoint continues with the batches, batch sizes and losses of a run that was
never interrupted; a worker killed inside a checkpoint resumes from the previous one; a checkpoint
corrupted in place is detected and skipped; a run resumes only its own checkpoints."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.stream import DocStream
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches

# A batch size that grows fast: 150 words at the first size, about 1,000 at the 15th. As in
# spaCy, the size advances once per batch formed, not for a doc longer than the size (yielded alone).
COMPOUNDING = "training.batcher.size={_use_: distnlp.compounding.v1, start: 150, stop: 5000, compound: 1.15}"
# Docs shorter than the first size (150): a longer doc goes alone and does not advance the size,
# and most docs of the demo corpus (all of EWT train, median 158 words) would hide the schedule.
MAX_DOC_WORDS = 100
SHORT_DOCS = f"corpus.max_length={MAX_DOC_WORDS}"


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable, "-m", "distnlp.cli.main", "train",
        f"training.output_dir={out}", "encoder.width=32", "training.max_steps=30", "training.eval_frequency=10",
        "training.log_every=1", "distributed.num_threads=1", "training.max_eval_docs=3", COMPOUNDING, SHORT_DOCS, *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True)


def _steps(out: Path) -> dict[int, dict]:
    records: dict[int, dict] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "step":
            records[record["step"]] = record  # the last attempt at a step wins
    return records


def _assert_same_curve(a: dict[int, dict], b: dict[int, dict], steps: range) -> None:
    for step in steps:
        assert b[step]["words"] == a[step]["words"], (step, a[step]["words"], b[step]["words"])
        for name, value in a[step]["losses"].items():
            assert abs(b[step]["losses"][name] - value) <= 1e-4 * max(1.0, abs(value)), (step, name, a[step], b[step])


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    out = tmp_path_factory.mktemp("straight") / "run"
    done = _train(out)
    assert done.returncode == 0, done.stderr
    return _steps(out)


def test_batch_sizes_follow_the_global_step_across_checkpoints(straight: dict[int, dict]) -> None:
    words = [straight[s]["words"] for s in range(1, 31)]
    # Checkpoints at steps 10 and 20 restart the batcher: the schedule must continue, not restart.
    assert sum(words[20:25]) > 3 * sum(words[0:5]), words  # right after the checkpoint of step 20
    assert sum(words[20:30]) > 5 * sum(words[0:10]), words


def test_killed_run_resumes_exactly(straight: dict[int, dict], tmp_path: Path) -> None:
    killed = _train(tmp_path / "b", "distributed.fail_at_step=15")
    assert killed.returncode != 0
    committed = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert committed == ["step-00000010"], committed  # step 20 never happened; no .tmp left behind
    resumed = _train(tmp_path / "b", "training.resume=true", "distributed.fail_at_step=15")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 10" in resumed.stdout
    b = _steps(tmp_path / "b")
    assert sorted(b) == sorted(straight) == list(range(1, 31))
    _assert_same_curve(straight, b, range(1, 31))


def test_killed_inside_a_checkpoint_resumes_from_the_previous_one(straight: dict[int, dict], tmp_path: Path) -> None:
    killed = _train(tmp_path / "c", "distributed.fail_at_step=20", "distributed.fail_in_checkpoint=true")
    assert killed.returncode != 0
    ckpts = tmp_path / "c" / "checkpoints"
    assert (ckpts / "step-00000020.tmp" / "rank-00000" / "state.json").exists()  # the per-rank files were written ...
    assert not (ckpts / "step-00000020.tmp" / "manifest.json").exists()  # ... the commit was not
    resumed = _train(tmp_path / "c", "training.resume=true", "distributed.fail_at_step=20", "distributed.fail_in_checkpoint=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 10" in resumed.stdout
    _assert_same_curve(straight, _steps(tmp_path / "c"), range(1, 31))
    assert not (ckpts / "step-00000020.tmp").exists()


def test_checkpoint_corrupted_in_place_is_skipped(straight: dict[int, dict], tmp_path: Path) -> None:
    out = tmp_path / "d"
    first = _train(out, "training.max_steps=20")
    assert first.returncode == 0, first.stderr
    weights = out / "checkpoints" / "step-00000020" / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:  # bit rot: 4 KB overwritten inside the file, same size
        fh.seek(size // 2)
        fh.write(b"\xff" * 4096)
    assert weights.stat().st_size == size
    resumed = _train(out, "training.resume=true", "training.max_steps=30")
    assert resumed.returncode == 0, resumed.stderr
    assert "step-00000020" in resumed.stderr and "checksum mismatch" in resumed.stderr and "model.safetensors" in resumed.stderr
    assert "resumed from the checkpoint of step 10" in resumed.stdout
    b = _steps(out)
    _assert_same_curve(straight, b, range(11, 31))
    assert all(b[s]["grad_norm"] == b[s]["grad_norm"] for s in b)  # no NaN anywhere


def test_resume_hygiene(tmp_path: Path) -> None:
    out = tmp_path / "e"
    # resume=true with nothing to resume is an error naming the directory
    nothing = _train(out, "training.resume=true")
    assert nothing.returncode == 1 and f"{out} holds no run to resume" in nothing.stderr
    assert len(nothing.stderr.strip().splitlines()) == 1
    (out / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "notes.txt").write_text("mine")
    (out / "draft.partial").write_text("mine too")  # a name like distnlp's temporary files
    assert _train(out, "training.max_steps=10").returncode == 0
    # a fresh run in a directory holding another run is refused, naming both ways out
    again = _train(out, "training.max_steps=10")
    assert again.returncode == 1
    assert "already holds run" in again.stderr and "training.resume=true" in again.stderr and "training.overwrite=true" in again.stderr
    # resuming with a changed config (not just the step limits) is refused, naming the key
    changed = _train(out, "training.resume=true", "encoder.width=48")
    assert changed.returncode == 1 and "config differs" in changed.stderr and "width" in changed.stderr, changed.stderr
    # overwrite replaces only what distnlp wrote: the user's file survives
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    replaced = _train(out, "training.max_steps=10", "training.overwrite=true")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "draft.partial").read_text() == "mine too"
    assert json.loads((out / "run.json").read_text())["run_id"] != run_id
    # a checkpoint of another run in checkpoints/ is never resumed
    other = tmp_path / "f"
    assert _train(other, "training.max_steps=20").returncode == 0
    shutil.copytree(other / "checkpoints" / "step-00000020", out / "checkpoints" / "step-00000020")
    resumed = _train(out, "training.resume=true", "training.max_steps=20")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 10" in resumed.stdout


def test_batches_resume_exactly_with_pending_docs() -> None:
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 200, "stop": 900, "compound": 1.05},
                       "tolerance": 0.5})

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


def _next_batch(batches: ResumableBatches) -> list:
    """A lone replica opens the next epoch itself (with several, the loop does once all are done)."""
    while not (batch := batches.take()):
        batches.begin_epoch(batches.reached_epoch)
    return batch


def _words_per_batch(restart_every: int, n: int = 60) -> list[int]:
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 150, "stop": 3000, "compound": 1.08},
                       "tolerance": 0.2})
    batches = ResumableBatches(DocStream(DEMO_DATA / "train", seed=1, infinite=True, max_length=MAX_DOC_WORDS), batcher)
    words = []
    for i in range(n):
        if restart_every and i % restart_every == 0:
            batches.restart()  # what a checkpoint does
        words.append(sum(len(d) for d in _next_batch(batches)))
    assert batches.batches_emitted == n
    return words


def test_restarted_batcher_continues_the_size_schedule() -> None:
    straight = _words_per_batch(0)
    assert sum(straight[40:]) > 5 * sum(straight[:20])  # the schedule grows ...
    # ... and restarting the batcher (at every checkpoint) changes neither where it is nor how
    # fast it grows: not the number of batches (which counts docs yielded alone, too long for
    # the size, that do not advance it), nor a fresh start.
    for every in (5, 3):
        restarted = _words_per_batch(every)
        assert abs(sum(restarted) - sum(straight)) <= 0.05 * sum(straight), (every, sum(restarted), sum(straight))
        assert sum(restarted[40:]) > 5 * sum(restarted[:20])
