"""training.prefetch: the next step's batch is prepared on a background thread, and the run
trains on exactly the batches, in the same steps, as a run that prepares them inline: the
prefetched batch never crosses a checkpoint (whose data state is the one before it) or an epoch
boundary. Resuming a prefetched run exactly is tests/training/test_resume.py's (prefetch is on
by default there)."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.data.stream import DocStream
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches
from distnlp.training.loop import run_worker


def _run(out: Path, prefetch: bool) -> dict[int, dict]:
    # The demo dev set (8K words) as the training corpus: 1,000-word batches cross an epoch
    # about every 8 steps; a checkpoint every 5 steps, so both boundaries fall inside the run.
    config = compose_config([f"corpus.train={DEMO_DATA / 'dev'}", f"corpus.dev={DEMO_DATA / 'dev'}", "encoder.width=32",
                             "distributed.num_threads=1", "training.max_steps=22", "training.eval_frequency=5", "training.log_every=1",
                             "training.max_eval_docs=2", "training.batcher.size=1000", "training.curves=false",
                             f"training.prefetch={str(prefetch).lower()}", f"training.output_dir={out}"])
    run_worker(config)
    steps = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "step":
            steps[record["step"]] = record
    return steps


def test_prefetch_trains_on_the_batches_of_an_inline_run(tmp_path: Path) -> None:
    inline, prefetched = _run(tmp_path / "inline", False), _run(tmp_path / "prefetched", True)
    assert sorted(inline) == sorted(prefetched) == list(range(1, 23))
    assert max(r["epoch"] for r in inline.values()) >= 2, "the run never crossed two epochs"
    for step in inline:
        a, b = inline[step], prefetched[step]
        assert (a["epoch"], a["words"], a["losses"]) == (b["epoch"], b["words"], b["losses"]), (step, a, b)


def test_only_a_runs_first_batch_is_prepared_on_the_loops_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch after a checkpoint (the stream restarts and refills its shuffle window)
    and after a new epoch opens is started at once on the input thread, while the loop saves,
    logs and evaluates, not prepared inline at the next step."""
    from distnlp.training.pipeline_objective import PipelineObjective

    on_loop_thread: list[bool] = []
    original = PipelineObjective.prepare

    def recording(self: PipelineObjective, *args: Any, **kwargs: Any) -> Any:
        on_loop_thread.append(threading.current_thread() is threading.main_thread())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PipelineObjective, "prepare", recording)
    steps = _run(tmp_path, True)  # 22 steps, a checkpoint every 5, more than two epochs
    assert max(r["epoch"] for r in steps.values()) >= 2
    assert on_loop_thread.count(True) == 1, f"{on_loop_thread.count(True)} of {len(on_loop_thread)} batches prepared inline"


def test_a_loaded_state_is_saved_unchanged() -> None:
    """Going back to a saved data state (what a prefetch rewind does before a checkpoint) and
    saving it again keeps the docs to skip: those emitted before the save while an earlier doc
    was still pending in the batcher."""
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 400, "tolerance": 0.5})

    def fresh() -> ResumableBatches:
        return ResumableBatches(DocStream(DEMO_DATA / "train", seed=3, infinite=True), batcher)

    run = fresh()
    states = []
    for _ in range(12):
        next(run)
        states.append(json.loads(json.dumps(run.state_dict())))
    with_skips = [s for s in states if s["skip"]]
    assert with_skips, "no state had docs to skip: the batcher held nothing back"
    for state in with_skips:
        loaded = fresh()
        loaded.load_state_dict(state)
        assert json.loads(json.dumps(loaded.state_dict())) == state


def _drive(prefetch: bool, steps: int) -> list[list[str]]:
    """The loop's data side alone, for `steps` steps: take (prefetched or inline), open the next
    epoch when reached, and every 7 steps checkpoint (rewind, save the state, restart); every
    third checkpoint the process "dies" and a fresh loader and prefetcher resume from the saved
    state. Returns the doc ids of each step's batch."""
    from distnlp.training.prefetch import InputPrefetcher
    from distnlp.training.virtual_ranks import DataRanks

    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 150, "stop": 900,
                                                                        "compound": 1.01}, "tolerance": 0.3})

    def fresh() -> tuple[DataRanks, InputPrefetcher]:
        ranks = DataRanks(lambda rank, world: ResumableBatches(DocStream(DEMO_DATA / "train", seed=5, rank=rank, world_size=world),
                                                                batcher, shuffle_words=2000), 0, 1)
        return ranks, InputPrefetcher(ranks, lambda docs: [d.doc_id for d in docs], enabled=prefetch)

    ranks, prefetcher = fresh()
    out, epoch, checkpoints = [], 0, 0
    for step in range(steps):
        prepared, _ = prefetcher.take()
        out.append(prepared.sub_batches)
        if prepared.reached_epoch > epoch:
            epoch += 1
            prefetcher.rewind()
            ranks.begin_epoch(epoch)
            prefetcher.start()  # as the loop does
        if step % 7 == 6:
            prefetcher.rewind()
            saved = json.loads(json.dumps(ranks.state_dict()))
            checkpoints += 1
            if checkpoints % 3 == 0:
                prefetcher.close()
                ranks, prefetcher = fresh()
                ranks.load_state_dict(saved)
            else:
                ranks.restart()
                prefetcher.start()  # as the loop does: the first batch after a checkpoint is read at once
    prefetcher.close()
    assert epoch >= 3, "the run crossed too few epochs to test their boundaries"
    return out


def test_prefetch_reads_what_inline_reads_over_thousands_of_steps() -> None:
    """The data side over 2,000 steps, ~285 checkpoints (a third of them resumed in a fresh
    loader) and several epochs: drift from a rewind at any one of them would show."""
    inline, prefetched = _drive(False, 2000), _drive(True, 2000)
    first_difference = next((i for i, (a, b) in enumerate(zip(inline, prefetched)) if a != b), None)
    assert first_difference is None, f"step {first_difference}: {inline[first_difference]} != {prefetched[first_difference]}"
