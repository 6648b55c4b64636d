"""Elastic resume at the data level: the cursors of N replicas, re-split for M, use every document
of the epoch exactly once, whatever the batcher still held (pending docs) when they were saved."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.convert import write_corpus
from distnlp.data.stream import DocStream, read_docs
from distnlp.errors import CheckpointError
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches

SEED = 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """106 docs in 11 row groups of 10 over 3 shards: shares and plans cut through row groups."""
    docs = list(read_docs(DEMO_DATA / "dev"))
    for i, d in enumerate(docs):
        d.doc_id = f"doc{i}"
    out = tmp_path_factory.mktemp("elastic") / "corpus"
    write_corpus(docs, out, shard_size=40, row_group_size=10, fmt="test")
    return out


def _replicas(corpus: Path, world: int, infinite: bool = False) -> list[ResumableBatches]:
    # a compounding size with tolerance: the batcher holds docs back, so some are pending at a save
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 60, "stop": 400,
                                                                         "compound": 1.1}, "tolerance": 0.4})
    return [ResumableBatches(DocStream(corpus, rank=r, world_size=world, seed=SEED, infinite=infinite), batcher) for r in range(world)]


def _take(replica: ResumableBatches, n: int | None) -> list[str]:
    seen: list[str] = []
    taken = 0
    while n is None or taken < n:
        batch = replica.take()
        if not batch:
            break
        seen += [d.doc_id for d in batch]
        taken += 1
    return seen


def _save(replicas: list[ResumableBatches]) -> list[dict]:
    return [json.loads(json.dumps(r.state_dict())) for r in replicas]  # through JSON, as a checkpoint


def _resume(corpus: Path, states: list[dict], world: int, infinite: bool = False) -> list[ResumableBatches]:
    replicas = _replicas(corpus, world, infinite)
    for r in replicas:
        r.load_resplit(states)
    return replicas


@pytest.mark.parametrize(("old", "new"), [(2, 1), (2, 3), (1, 2), (3, 2)])
def test_resized_resume_uses_every_document_of_the_epoch_once(corpus: Path, old: int, new: int) -> None:
    everything = Counter(d.doc_id for d in read_docs(corpus))
    first = _replicas(corpus, old)
    seen = Counter()
    for rank, replica in enumerate(first):
        seen.update(_take(replica, 2 + 3 * rank))  # ranks at different places, batcher buffers full
    assert 0 < sum(seen.values()) < len(everything)
    second = _resume(corpus, _save(first), new)
    rest = [_take(r, None) for r in second]
    seen.update(doc for part in rest for doc in part)
    assert seen == everything  # each document exactly once: none twice, none dropped
    words = {d.doc_id: len(d.words) for d in read_docs(corpus)}
    sizes = [sum(words[doc] for doc in p) for p in rest]
    # the leftover is split evenly by words (give or take a doc: pending docs were cut out of the plan)
    assert max(sizes) - min(sizes) <= max(words.values()), sizes
    assert all(r.epoch == 1 and r.exhausted for r in second)  # the epoch is over on every new replica


def test_two_resizes_in_one_epoch(corpus: Path) -> None:
    everything = Counter(d.doc_id for d in read_docs(corpus))
    seen = Counter()
    first = _replicas(corpus, 2)
    for replica in first:
        seen.update(_take(replica, 2))
    second = _resume(corpus, _save(first), 3)  # the saved plan travels on
    for replica in second:
        seen.update(_take(replica, 1))
    third = _resume(corpus, _save(second), 1)
    seen.update(_take(third[0], None))
    assert seen == everything


def test_a_resize_at_an_epoch_boundary_starts_the_next_epoch_in_full(corpus: Path) -> None:
    first = _replicas(corpus, 2)
    for replica in first:
        _take(replica, None)  # the whole epoch
    second = _resume(corpus, _save(first), 3)
    assert all(r.epoch == 1 for r in second)
    nxt = Counter(doc for r in second for doc in _take(r, None))
    assert nxt == Counter(d.doc_id for d in read_docs(corpus))


def test_same_world_size_resume_is_unchanged(corpus: Path) -> None:
    """Re-splitting for the same N is also exact (the engine restores plain cursors then)."""
    everything = Counter(d.doc_id for d in read_docs(corpus))
    first = _replicas(corpus, 2)
    seen = Counter()
    for replica in first:
        seen.update(_take(replica, 3))
    second = _resume(corpus, _save(first), 2)
    seen.update(doc for r in second for doc in _take(r, None))
    assert seen == everything


def test_cursors_an_epoch_apart_are_refused(corpus: Path) -> None:
    first = _replicas(corpus, 2)
    states = _save(first)
    states[1]["stream"]["epoch"] = 2
    with pytest.raises(CheckpointError, match="same number of replicas"):
        _resume(corpus, states, 1)


def test_a_checkpoint_after_the_stream_left_the_resized_epoch_keeps_its_plan(corpus: Path) -> None:
    """A batcher still holds docs of the resized epoch when the stream has handed out its last
    one (the stream's cursor is at the next epoch's start), so the saved cursor goes back into
    that epoch and the plan must still be in it (a restart is what every checkpoint does)."""
    everything = Counter(d.doc_id for d in read_docs(corpus))
    first = _replicas(corpus, 2, infinite=True)
    seen: Counter = Counter()
    for replica in first:
        seen.update(_take(replica, 2))
    second = _resume(corpus, _save(first), 3, infinite=True)
    crossed = 0
    for replica in second:
        while replica.stream.epoch == 0:
            seen.update(d.doc_id for d in replica.take())
        crossed += any(cursor[0] == 0 for cursor in replica._pending)  # docs of epoch 0 still in the batcher
        replica.restart()
    assert crossed  # the case this test is about happened
    for replica in second:
        seen.update(_take(replica, None))
        assert replica.reached_epoch == 1 and replica.stream.epoch == 1  # done, and never read past the open epoch
    assert seen == everything
    for replica in second:  # the loop opens epoch 1 once every rank reached it: a full epoch again
        replica.begin_epoch(1)
    assert Counter(doc for r in second for doc in _take(r, None)) == everything


def test_a_resized_plan_reads_each_row_group_once(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan cuts row groups into many pieces around docs already emitted; each row group is
    still read (and hash-checked) once per rank, not once per piece."""
    from distnlp.data.shards import CorpusInfo

    first = _replicas(corpus, 3)
    for rank, replica in enumerate(first):
        _take(replica, 2 + rank)
    second = _resume(corpus, _save(first), 2)
    reads: list[tuple[int, int]] = []
    real = CorpusInfo.read_unit

    def counted(self: CorpusInfo, unit, columns, verify=True):  # noqa: ANN001, ANN202
        if columns != ["spaces"]:  # docs read, not the word counts of boundary row groups
            reads.append(unit.index)
        return real(self, unit, columns, verify)

    monkeypatch.setattr(CorpusInfo, "read_unit", counted)
    for replica in second:
        _take(replica, None)
    pieces = [(r.stream.rank, p.unit.index) for r in second for p in r.stream.pieces(0)]
    assert len(pieces) > len(set(pieces))  # row groups were cut into several pieces
    assert len(reads) == len(set(pieces))  # one read per rank and row group


def test_a_resize_reads_the_word_counts_of_boundary_row_groups_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-window, every row group of the epoch holds docs already emitted. The re-split must not
    read each of them to count the words left (O(corpus) per new rank at every resume): the saved
    skip entries carry their docs' words, the plan keeps each piece's words, and only row groups
    where an old cursor or a share boundary falls are read."""
    from tests.data.conftest import write_corpus as write_layout

    from distnlp.data.shards import CorpusInfo

    path = tmp_path / "corpus"
    write_layout(path, [[20] * 40 for _ in range(2)], seed=1, min_words=1, max_words=30)  # 80 row groups
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 200, "tolerance": 0.2})

    def replicas(world: int) -> list[ResumableBatches]:
        return [ResumableBatches(DocStream(path, rank=r, world_size=world, seed=SEED), batcher, shuffle_words=1_000_000)
                for r in range(world)]

    first = replicas(4)
    for replica in first:
        _take(replica, 5)
    states = _save(first)
    assert sum(len(s["skip"]) for s in states) > 80  # docs already emitted past the cursors, spread over the row groups
    counted: list[int] = []
    real = CorpusInfo.row_words

    def row_words(self: CorpusInfo, unit):  # noqa: ANN001, ANN202
        if unit.index not in self._row_words:
            counted.append(unit.index)
        return real(self, unit)

    monkeypatch.setattr(CorpusInfo, "row_words", row_words)
    second = replicas(3)
    second[1].load_resplit(states)
    _take(second[1], 3)
    assert len(counted) <= 2 * 4 + 2, counted  # old cursors and share boundaries (N of each), the new rank's two ends
