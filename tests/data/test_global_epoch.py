"""One global epoch, elastic from every checkpoint: a data-level property test (no model).

N replicas read a corpus the way the training loop drives them (training/engine.py): each step
every replica takes one batch; the epoch advances when every replica has trained on its share,
and then all open the next one together. At every step a checkpoint is taken (every replica's
state) and checked to resume on M replicas: what the checkpoint says the epoch has left, plus
what was trained on before it, is the epoch exactly once, and M shares split it with nothing
twice. From checkpoints spread over the run (mid-window, mid-epoch, at epoch ends) the run is
really resumed on M, resized a second time to K, and driven to the end of the next epoch.

Checked: every document of every epoch exactly once; no replica ever trains on a document of an
epoch another replica has not finished (epochs are crossed together); no resume is refused; the
shares are balanced by words (few empty steps while others finish).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.elastic import remaining_plan, share
from distnlp.data.shards import open_corpus, row_order
from distnlp.data.stream import DocStream, read_docs
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches

SEED = 11
WINDOW = 1_000_000  # corpus.shuffle_words of the shipped configs
COLUMNS = ["doc_id", "words", "spaces"]


def _batcher(size: int) -> Any:
    return resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": size // 2, "stop": size,
                                                                      "compound": 1.01}, "tolerance": 0.3})


class World:
    """N replicas driven as the training loop drives them."""

    def __init__(self, corpus: Path, n: int, size: int, states: list[dict[str, Any]] | None = None, *,
                 make: Callable[[int], ResumableBatches] | None = None, key: Callable[[Any], Any] | None = None) -> None:
        """`make(rank)`: a replica's batches (default: whole docs of `corpus`, `size`-word batches);
        `key(doc)`: what a trained doc is counted as (default: its doc id)."""
        make = make or (lambda r: ResumableBatches(DocStream(corpus, rank=r, world_size=n, seed=SEED, columns=COLUMNS), _batcher(size),
                                                   shuffle_words=WINDOW))
        self.replicas = [make(r) for r in range(n)]
        self.key = key or (lambda doc: doc.doc_id)
        if states is not None:
            for replica in self.replicas:
                if len(states) == n:
                    replica.load_state_dict(states[replica.stream.rank])
                else:
                    replica.load_resplit(states)
        self.epoch = min(r.open_epoch for r in self.replicas)
        self.idle = Counter()  # epoch -> empty steps taken by replicas that were done

    def step(self) -> list[tuple[int, str]]:
        """One optimizer step: (epoch, doc id) of every doc trained on."""
        trained = []
        for replica in self.replicas:
            batch = replica.take()
            self.idle[self.epoch] += not batch
            for doc in batch:
                # the gate: a doc is of the epoch every replica is in, never of a later one
                assert doc.user_data["_distnlp_cursor"][0] == self.epoch, (doc.user_data["_distnlp_cursor"], self.epoch)
                trained.append((self.epoch, self.key(doc)))
        reached = min(r.reached_epoch for r in self.replicas)
        if reached > self.epoch:
            self.epoch = reached
            for replica in self.replicas:
                replica.begin_epoch(reached)
        return trained

    def states(self) -> list[dict[str, Any]]:
        return [r.state_dict() for r in self.replicas]

    def run_until(self, epoch: int) -> Iterator[list[tuple[int, str]]]:
        while self.epoch < epoch:
            yield self.step()


class Corpus:
    """A corpus's doc ids by (row group, stored row), to read a plan as documents."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.info = open_corpus(path)
        ids = [d.doc_id for d in read_docs(path, columns=COLUMNS)]
        starts = np.cumsum([0] + [u.rows for u in self.info.units])
        self.ids = [ids[a:b] for a, b in zip(starts, starts[1:])]
        self.everything = Counter(ids)

    def docs(self, pieces: list[Any], epoch: int) -> list[str]:
        out = []
        for p in pieces:
            order = row_order(p.unit, SEED, epoch, True)
            out += [self.ids[p.unit.index][order[q]] for q in range(p.start, p.stop) if q not in p.exclude]
        return out


def _check_checkpoint(corpus: Corpus, states: list[dict[str, Any]], trained: Counter, epoch: int, m: int) -> None:
    """What the checkpoint has left of `epoch` + what was trained on = the epoch exactly once,
    and M new replicas' shares split it exactly (what `load_resplit` does, without reading)."""
    plan_epoch, plan, parts = remaining_plan(corpus.info, states, shuffle=True)  # raises if refused
    assert parts == []  # whole docs: no part of a cut doc
    left = corpus.docs(plan, plan_epoch)
    if plan_epoch == epoch:
        assert trained + Counter(left) == corpus.everything
    else:  # every replica had finished `epoch`: the checkpoint starts the next in full
        assert plan_epoch == epoch + 1 and trained == corpus.everything and Counter(left) == corpus.everything
    shares = [corpus.docs(share(corpus.info, seed=SEED, epoch=plan_epoch, shuffle=True, rank=r, world_size=m, plan=plan), plan_epoch)
              for r in range(m)]
    assert Counter(d for s in shares for d in s) == Counter(left)


def _property(path: Path, n: int, size: int, epochs: int, resumes: int, max_idle: float) -> None:
    corpus = Corpus(path)
    world = World(path, n, size)
    by_epoch: dict[int, Counter] = {}
    checkpoints: list[tuple[int, list[dict[str, Any]], dict[int, Counter]]] = []
    steps = 0
    for trained in world.run_until(epochs):
        steps += 1
        for epoch, doc in trained:
            by_epoch.setdefault(epoch, Counter())[doc] += 1
        states = world.states()
        m = RESUME_ON[steps % len(RESUME_ON)]  # every checkpoint, each M in turn
        _check_checkpoint(corpus, states, by_epoch.get(world.epoch, Counter()), world.epoch, m)
        checkpoints.append((world.epoch, states, {e: Counter(c) for e, c in by_epoch.items()} if steps % 7 == 0 else {}))
    assert steps * n >= 300  # hundreds of global batches per run
    for epoch in range(epochs):
        assert by_epoch[epoch] == corpus.everything, epoch  # every doc of every epoch exactly once
    # Balanced by words: few empty steps while the last replicas finish (with many docs per batch,
    # about one per replica and epoch; the demo's docs of ~380 words make whole-doc steps uneven).
    assert sum(world.idle.values()) <= max_idle * steps * n, (dict(world.idle), steps)
    # Really resume from checkpoints spread over the run, and resize a second time.
    picked = [c for c in checkpoints if c[2]]
    for i, (epoch, states, seen) in enumerate(picked[:: max(1, len(picked) // resumes)]):
        m, k = RESUME_ON[i % len(RESUME_ON)], RESUME_ON[(i * 5 + 3) % len(RESUME_ON)]
        first = World(path, m, size, [dict(s) for s in states])
        seen = {e: Counter(c) for e, c in seen.items()}
        for _ in range(1 + i % 5):
            for e, doc in first.step():
                seen.setdefault(e, Counter())[doc] += 1
        second = World(path, k, size, first.states())
        for trained in second.run_until(epoch + 2):
            for e, doc in trained:
                seen.setdefault(e, Counter())[doc] += 1
        for e in (epoch, epoch + 1):
            assert seen[e] == corpus.everything, (n, m, k, e)


RESUME_ON = [1, 2, 3, 5, 8, 16]


@pytest.fixture(scope="module")
def many_row_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.data.conftest import write_corpus

    path = tmp_path_factory.mktemp("global_epoch") / "corpus"
    write_corpus(path, [[40] * 60 for _ in range(2)], seed=3, min_words=1, max_words=40)  # 4,800 docs in 120 row groups
    return path


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_synthetic_corpus_of_many_row_groups(many_row_groups: Path, n: int) -> None:
    _property(many_row_groups, n, size=400, epochs=2, resumes=6, max_idle=0.02)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_demo_corpus(n: int) -> None:
    _property(DEMO_DATA / "train", n, size=2000, epochs=3, resumes=4, max_idle=0.2)


def test_long_documents_are_shared_by_documents() -> None:
    """Docs longer than the first batch go alone into batches: steps follow documents, so shares
    hold equal documents; otherwise equal words (the main job's 380-word docs from 100-word
    batches: 28.9% empty replica-steps by words, 1.3% by documents)."""
    from distnlp.config.corpora import CorpusEntry
    from distnlp.data.mixture import open_training_stream
    from distnlp.config.settings import BatcherSettings

    entries = [CorpusEntry("train", str(DEMO_DATA / "train"))]  # 380 words per doc on average
    def first_batch_words(node: dict) -> float | None:
        return BatcherSettings.from_config({"_use_": "distnlp.batch_by_words.v1", **node}, "training.batcher").first_batch_words

    assert first_batch_words({"size": {"_use_": "distnlp.compounding.v1", "start": 100, "stop": 1000}}) == 100
    assert first_batch_words({"size": 2000}) == 2000 and first_batch_words({}) is None
    for start, by_words in ((100, False), (2000, True), (None, True)):
        stream = open_training_stream(entries, temperature=1.0, rank=0, world_size=2, seed=0, first_batch_words=start)
        assert stream.balance_by_words is by_words
    # cut at sentence boundaries to at most the first batch: batches follow words again
    for split, by_words in ((100, True), (50, True), (200, False), (0, False)):
        stream = open_training_stream(entries, temperature=1.0, rank=0, world_size=2, seed=0, first_batch_words=100, split_length=split)
        assert stream.balance_by_words is by_words, split
