"""Ray Train elastic scaling (distributed.num_workers=MIN..MAX) on a real two-node local cluster:
the node of one of 2 workers is removed mid-run, no node can host a replacement, and the run
finishes on the 1 worker left, from its last committed checkpoint re-split over 1 replica. Every
document of an epoch is trained on exactly once (a logging batcher records each doc a step takes)."""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray

# Nodes on 127.0.0.1: Ray reads this once, on import (with Ray already imported by another test
# module, the cluster takes the address that module's import chose, as local_ray's Ray does).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")

EVAL_FREQUENCY = 4
MAX_STEPS = 20
REMOVE_AFTER_STEP = EVAL_FREQUENCY + 1  # a checkpoint is committed, the next one is not yet

# One log file per worker process; every record names the group's size and the batcher session
# (the engine restarts its batcher at each checkpoint), so the steps a restart trains again can
# be told apart from those it kept.
LOGGED_BATCHER = """
import itertools, json, os
import ray.train
from distnlp.data.batching import configure_batch_by_words
from distnlp.registry import batchers

_sessions = itertools.count()


@batchers("test.elastic_logged_batch_by_words.v1")
def logged(log_dir, **settings):
    inner = configure_batch_by_words(**settings)

    def batcher(docs, start=0):
        session, world = next(_sessions), ray.train.get_context().get_world_size()
        path = os.path.join(log_dir, f"worker-{os.getpid()}.jsonl")
        for batch in inner(docs, start=start):
            with open(path, "a") as f:
                f.writelines(json.dumps([world, session, d.user_data["_distnlp_cursor"][0], f"{d.doc_id}@{d.words[0]}/{len(d)}"]) + "\\n" for d in batch)
            yield batch
    return batcher
"""


@pytest.fixture()
def two_nodes() -> Iterator[tuple[Any, Any]]:
    """A head node and a second node with 1 CPU each: room for exactly 2 one-CPU workers."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()


def _config(out: Path, tmp: Path) -> dict[str, Any]:
    from distnlp.cli.compose import DEMO_DATA, compose_config
    from distnlp.config import validate_config

    (tmp / "logged.py").write_text(LOGGED_BATCHER)
    (tmp / "docs").mkdir()
    config = compose_config([
        "distributed=ray", "distributed.num_workers=1..2", "distributed.use_gpu=false", "distributed.num_threads=1",
        f"training.output_dir={out}", "encoder.width=16", f"corpus.train={DEMO_DATA / 'dev'}", "nlp.pipeline=[tagger,ner]",
        f"training.max_steps={MAX_STEPS}", f"training.eval_frequency={EVAL_FREQUENCY}", "training.log_every=1",
        "training.max_eval_docs=2", "training.batcher.size=400", "training.curves=false", f"code={tmp / 'logged.py'}",
        "training.batcher._use_=test.elastic_logged_batch_by_words.v1", f"+training.batcher.log_dir={tmp / 'docs'}",
        "training.prefetch=false",  # the log records what the batcher yields: no batch read ahead and discarded
        "corpus.split_length=100",  # long documents cut at sentence boundaries: logged piece by piece
    ])
    validate_config(config)
    return config


def _steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"event": "step"' in line]


def test_lost_node_finishes_on_fewer_workers(two_nodes: tuple[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from distnlp.ray_backend.driver import train_on_ray

    # Ray's view of the cluster is refreshed every 20 s: the first restart may still count the
    # lost node and wait for a second worker until the worker-group start timeout (60 s by
    # default), then restart on 1. A shorter timeout keeps the test short; the outcome is the same.
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "20")

    cluster, second = two_nodes
    out = tmp_path / "run"
    config = _config(out, tmp_path)
    done: dict[str, Any] = {}

    def train() -> None:
        try:
            done["result"] = train_on_ray(config)
        except BaseException as exc:  # shown by the assertion below
            done["error"] = exc

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    deadline = time.monotonic() + 240
    while max(_steps(out), default=0) < REMOVE_AFTER_STEP:
        assert thread.is_alive() and time.monotonic() < deadline, (done, _steps(out))
        time.sleep(0.2)
    cluster.remove_node(second)  # its worker dies; the head node has room for 1 worker only
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in done, done
    shown = capsys.readouterr().out
    assert "ray: 1..2 CPU worker(s)" in shown
    assert done["result"]["metrics"]["step"] == MAX_STEPS
    manifest = json.loads((Path(done["result"]["checkpoint"]) / "manifest.json").read_text())
    assert manifest["step"] == MAX_STEPS and manifest["world_size"] == 1, manifest
    # Restarted once, on 1 replica, from a checkpoint taken on 2.
    resumed = [int(line.rsplit(" ", 1)[1]) for line in shown.splitlines() if line.startswith("resumed from the checkpoint of step ")]
    assert len(resumed) == 1 and resumed[0] % EVAL_FREQUENCY == 0 and resumed[0] >= EVAL_FREQUENCY, shown
    assert [line.split("replicas: ")[1].split(" ")[0] for line in shown.splitlines() if "replicas: " in line] == ["2", "1"], shown
    # metrics.jsonl: steps 1..F on 2 replicas (F >= the resumed step R), then R+1..MAX_STEPS on 1.
    steps, again = _steps(out), resumed[0] + 1
    cut = len(steps) - (MAX_STEPS - resumed[0])
    assert cut >= resumed[0] and steps[:cut] == list(range(1, cut + 1)) and steps[cut:] == list(range(again, MAX_STEPS + 1)), steps
    used = _docs_used(tmp_path / "docs", kept_sessions=resumed[0] // EVAL_FREQUENCY)
    on_one = _docs_used(tmp_path / "docs", kept_sessions=0)  # the 1-replica group's alone
    assert 0 < sum(on_one[0].values()) < sum(used[0].values())  # epoch 0 was shared by both groups
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.stream import read_docs

    from distnlp.data.split_docs import split_at_sentences

    corpus = Counter(f"{p.doc_id}@{p.words[0]}/{len(p)}" for d in read_docs(DEMO_DATA / "dev") for p in split_at_sentences(d, 100))
    assert sorted(used) == [0, 1], sorted(used)  # the lost node went mid-epoch 0; the run ends in epoch 1
    assert used[0] == corpus  # epoch 0, re-split from 2 replicas to 1: none twice, none dropped
    assert max(used[1].values()) == 1 and set(used[1]) < set(corpus)  # epoch 1 (cut by max_steps): none twice


def _docs_used(log_dir: Path, kept_sessions: int) -> dict[int, Counter]:
    """Docs trained on per epoch, as the model has them: a 2-replica worker's batcher sessions up
    to the checkpoint the run resumed from (the steps after it were trained again), then all of
    the 1-replica group's."""
    by_epoch: dict[int, Counter] = {}
    for f in log_dir.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            world, session, epoch, doc_id = json.loads(line)
            if world == 2 and session >= kept_sessions:
                continue
            by_epoch.setdefault(epoch, Counter())[doc_id] += 1
    return by_epoch
