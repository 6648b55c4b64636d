"""Long training docs cut at sentence boundaries (corpus.split_length): well-formed pieces, and
every piece used exactly once across checkpoints, restarts and elastic resizes."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.config.settings import CorpusSettings
from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.split_docs import split_at_sentences
from distnlp.data.stream import DocStream, read_docs
from distnlp.errors import ConfigError
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches
from tests.benchmarks.bench_balance import excess, step_words
from tests.data.test_global_epoch import World

SPLIT = 60


def _doc() -> Doc:
    # three sentences of 4 words; an entity and an arc inside each; an unknown-entity range across 2-3
    words = [f"w{i}" for i in range(12)]
    heads = [1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9]
    return Doc(words=words, spaces=[True] * 12, doc_id="d", sent_starts=[i % 4 == 0 for i in range(12)],
               tags=[f"T{i}" for i in range(12)], deps=["dep"] * 12, heads=heads, ent_spans=[(0, 2, "A"), (8, 10, "B")],
               ents_missing=[(6, 9)])


def test_pieces_are_whole_sentences_with_their_own_heads_and_entities() -> None:
    pieces = split_at_sentences(_doc(), 5)
    assert [p.words for p in pieces] == [[f"w{i}" for i in range(a, a + 4)] for a in (0, 4, 8)]
    assert [p.heads for p in pieces] == [[1, 1, 1, 1]] * 3
    assert [p.ent_spans for p in pieces] == [[(0, 2, "A")], [], [(0, 2, "B")]]
    assert [p.ents_missing for p in pieces] == [None, [(2, 4)], [(0, 1)]]
    assert all(p.sent_starts == [True, False, False, False] for p in pieces)
    assert [p.tags for p in pieces][1] == ["T4", "T5", "T6", "T7"]
    # as many sentences per piece as fit
    assert [len(p) for p in split_at_sentences(_doc(), 8)] == [8, 4]
    whole = _doc()
    assert split_at_sentences(whole, 12) == [whole] and split_at_sentences(whole, 0) == [whole]  # the doc itself


def test_no_cut_where_an_arc_or_an_entity_crosses_or_a_text_class_belongs_to_the_whole() -> None:
    doc = _doc()
    doc.heads[3] = 4  # an arc across the start of sentence 2
    assert [len(p) for p in split_at_sentences(doc, 5)] == [8, 4]
    doc = _doc()
    doc.ent_spans = [(3, 5, "A")]
    assert [len(p) for p in split_at_sentences(doc, 5)] == [8, 4]
    doc = _doc()
    doc.cats = {"POS": 1.0}
    assert len(split_at_sentences(doc, 5)) == 1
    doc = _doc()
    doc.sent_starts = None
    assert len(split_at_sentences(doc, 5)) == 1
    long_sentence = _doc()
    long_sentence.sent_starts = [i in (0, 9) for i in range(12)]
    long_sentence.heads = [0] * 9 + [9, 9, 9]
    long_sentence.ent_spans = []
    assert [len(p) for p in split_at_sentences(long_sentence, 5)] == [9, 3]  # a long sentence stays whole


def test_demo_documents_rejoin_into_the_originals() -> None:
    for doc in list(read_docs(DEMO_DATA / "train"))[:60]:
        pieces = split_at_sentences(doc, SPLIT)
        assert sum((p.words for p in pieces), []) == doc.words
        assert sum((p.tags for p in pieces), []) == doc.tags
        offset, heads = 0, []
        for p in pieces:
            heads += [h + offset for h in p.heads]
            assert all(0 <= h < len(p) for h in p.heads)
            offset += len(p)
        assert heads == doc.heads
        assert sorted(e for p, o in zip(pieces, _offsets(pieces)) for e in [(s + o, t + o, lab) for s, t, lab in p.ent_spans]) \
            == sorted(doc.ent_spans)
        if len(pieces) > 1:
            assert max(len(p) for p in pieces) <= max(SPLIT, max(len(s) for s in doc.sents))


def _offsets(pieces: list[Doc]) -> list[int]:
    out, at = [], 0
    for p in pieces:
        out.append(at)
        at += len(p)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo training docs (hundreds of words each) in row groups of 8 over 2 shards."""
    docs = list(read_docs(DEMO_DATA / "train"))[:48]
    for i, d in enumerate(docs):
        d.doc_id = f"doc{i}"
    out = tmp_path_factory.mktemp("split") / "corpus"
    write_corpus(docs, out, shard_size=24, row_group_size=8, fmt="test")
    return out


def _replicas(corpus: Path, world: int) -> list[ResumableBatches]:
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 80, "stop": 400,
                                                                         "compound": 1.1}, "tolerance": 0.4})
    return [ResumableBatches(DocStream(corpus, rank=r, world_size=world, seed=2), batcher, shuffle_words=500, split_length=SPLIT)
            for r in range(world)]


def _key(doc: Doc) -> tuple[str, str]:
    return (doc.doc_id, doc.words[0] + "/" + str(len(doc)))


def _take(replica: ResumableBatches, n: int | None) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    while n is None or n > 0:
        batch = replica.take()
        if not batch:
            break
        seen += [_key(d) for d in batch]
        n = None if n is None else n - 1
    return seen


def _all_pieces(corpus: Path) -> Counter:
    return Counter(_key(p) for d in read_docs(corpus) for p in split_at_sentences(d, SPLIT))


def test_checkpoints_between_pieces_of_a_doc_resume_exactly(corpus: Path) -> None:
    whole = _take(_replicas(corpus, 1)[0], None)
    assert Counter(whole) == _all_pieces(corpus) and len(whole) > 48  # docs were cut, each piece used once
    straight = _replicas(corpus, 1)[0]
    reference: list[tuple[str, str]] = []
    while batch := _take(straight, 1):
        reference += batch
        straight.restart()  # what a checkpoint does in an uninterrupted run
    assert Counter(reference) == _all_pieces(corpus)
    run = _replicas(corpus, 1)[0]
    got: list[tuple[str, str]] = []
    while batch := _take(run, 1):
        got += batch
        state = json.loads(json.dumps(run.state_dict()))  # a checkpoint after every batch, through JSON
        run = _replicas(corpus, 1)[0]
        run.load_state_dict(state)
    assert got == reference


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 1), (1, 2)])
def test_a_resize_between_pieces_uses_every_piece_once(corpus: Path, old: int, new: int) -> None:
    first = _replicas(corpus, old)
    seen: Counter = Counter()
    for rank, replica in enumerate(first):
        seen.update(_take(replica, 3 + 2 * rank))
    states = [json.loads(json.dumps(r.state_dict())) for r in first]
    assert any(len(entry) > 3 for s in states for entry in s["skip"])  # parts of cut docs were out at the save
    second = _replicas(corpus, new)
    for r in second:
        r.load_resplit(states)
    for r in second:
        seen.update(_take(r, None))
    assert seen == _all_pieces(corpus)


def test_split_length_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="corpus.split_length"):
        CorpusSettings.from_config({"corpus": {"split_length": -1}})


@pytest.mark.parametrize("ranks", [2, 4])
def test_cut_docs_balance_the_replicas_batches(ranks: int) -> None:
    """The slowest replica's words over the mean, per step (what the others wait for in the
    all-reduce): whole demo docs leave ranks 23% / 83% apart at 2 / 4 ranks, cut ones 2% / 6%."""
    whole, cut = (step_words(str(DEMO_DATA / "train"), ranks, 2000 // ranks, split, steps=10_000) for split in (0, 100))
    assert excess(whole) > 0.2
    assert excess(cut) < 0.08
    assert sum(map(sum, cut)) / len(cut) > 0.85 * 2000  # the batches still fill to the budget


def _world(corpus: Path, n: int, states: list[dict] | None = None) -> World:
    """N replicas of cut docs, driven as the training loop drives them (tests/data/test_global_epoch.py)."""
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 200, "tolerance": 0.3})
    return World(corpus, n, 0, states, key=_key, make=lambda r: ResumableBatches(DocStream(corpus, rank=r, world_size=n, seed=7), batcher,
                                                                                  shuffle_words=400, split_length=SPLIT))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 demo training docs (about 7,000 words) in row groups of 4 over 2 shards."""
    docs = list(read_docs(DEMO_DATA / "train"))[100:120]
    for i, d in enumerate(docs):
        d.doc_id = f"doc{i}"
    out = tmp_path_factory.mktemp("split_small") / "corpus"
    write_corpus(docs, out, shard_size=10, row_group_size=4, fmt="test")
    return out


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_checkpoint_of_cut_docs_resumes_on_any_number_of_replicas(small_corpus: Path, n: int) -> None:
    """At every step of two epochs a checkpoint is taken and resumed on M replicas (M cycling
    through 1..8) up to the end of its epoch: every piece of the epoch is trained on exactly once,
    whatever was pending, half emitted or skipped when the checkpoint was taken."""
    corpus = small_corpus
    everything = _all_pieces(corpus)
    world = _world(corpus, n)
    seen: dict[int, Counter] = {}
    step = halves = 0
    while world.epoch < 2:
        for epoch, piece in world.step():
            seen.setdefault(epoch, Counter())[piece] += 1
        step += 1
        epoch, states = world.epoch, json.loads(json.dumps(world.states()))  # through JSON, as a checkpoint
        halves += any(len(entry) > 3 for state in states for entry in state["skip"])
        resumed = _world(corpus, [1, 2, 3, 5, 8][step % 5], states)
        rest = Counter(seen.get(epoch, Counter()))
        while resumed.epoch == epoch:
            for e, piece in resumed.step():
                rest[piece] += 1
        assert rest == everything, (n, step, epoch)
    assert seen[0] == everything and seen[1] == everything
    assert step >= 12 and len(everything) > 40  # a checkpoint at every step of 2 epochs; docs cut into many pieces
    assert halves >= 3  # checkpoints taken with a doc's pieces partly out
