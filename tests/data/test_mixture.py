"""Several corpora as one stream (data/mixture.py): proportions, determinism, rank shares, exact
resume through ResumableBatches (pending docs far back, epoch boundaries), one-line errors."""
from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from distnlp.config.corpora import CorpusEntry
from distnlp.data.mixture import CORPUS_KEY, MixtureStream, mixture_probabilities, next_corpus, open_training_stream
from distnlp.data.stream import DocStream
from distnlp.errors import CheckpointError, ConfigError
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches


@pytest.fixture
def corpora(tmp_path: Path, corpus_writer: Any) -> dict[str, Path]:
    """a: 40 docs in 5 row groups; b: 12 docs in 3; c: 6 docs in 1."""
    out = {}
    for name, layout, seed in (("a", [[8, 8], [8, 8, 8]], 1), ("b", [[4, 4, 4]], 2), ("c", [[6]], 3)):
        corpus_writer(tmp_path / name, layout, seed=seed)
        out[name] = tmp_path / name
    return out


def mixture(corpora: dict[str, Path], names: str = "ab", *, weights: dict[str, float] | None = None, temperature: float = 1.0,
            rank: int = 0, world_size: int = 1, seed: int = 0, **kw: Any) -> MixtureStream:
    entries = [CorpusEntry(n, str(corpora[n]), weight=(weights or {}).get(n)) for n in names]
    stream = open_training_stream(entries, temperature=temperature, rank=rank, world_size=world_size, seed=seed, **kw)
    assert isinstance(stream, MixtureStream)
    return stream


def keys(docs: Any) -> list[tuple[str, str]]:
    return [(d.user_data[CORPUS_KEY], d.doc_id) for d in docs]


def test_probabilities_from_weights_and_temperature() -> None:
    assert mixture_probabilities([3.0, 1.0], [10, 10], 1.0) == [0.75, 0.25]  # weights win over sizes
    assert mixture_probabilities([None, None], [40, 10], 1.0) == [0.8, 0.2]  # proportional to size
    assert mixture_probabilities([None, None], [40, 10], 0.0) == [0.5, 0.5]  # uniform
    assert mixture_probabilities([None, None], [40, 10], 0.5) == pytest.approx([2 / 3, 1 / 3])  # sqrt smoothing


@pytest.mark.parametrize("probabilities", [[0.75, 0.25], [0.5, 0.3, 0.2], [0.61, 0.29, 0.07, 0.03]])
def test_schedule_keeps_every_prefix_within_one_draw_of_its_share(probabilities: list[float]) -> None:
    drawn = [0] * len(probabilities)
    for k in range(1, 2001):
        drawn[next_corpus(k - 1, probabilities, drawn)] += 1
        for p, n in zip(probabilities, drawn):
            assert abs(n - k * p) < len(probabilities), (k, drawn)
    assert all(abs(n - 2000 * p) <= 1 for p, n in zip(probabilities, drawn)), drawn


def test_draws_follow_the_weights(corpora: dict[str, Path]) -> None:
    stream = mixture(corpora, "abc", weights={"a": 5.0, "b": 3.0, "c": 2.0})
    docs = list(islice(iter(stream), 500))
    counts = Counter(d.user_data[CORPUS_KEY] for d in docs)
    assert counts == {"a": 250, "b": 150, "c": 100}
    # and in every window, not only in total: the first 20 draws hold 10 / 6 / 4
    assert Counter(d.user_data[CORPUS_KEY] for d in docs[:20]) == {"a": 10, "b": 6, "c": 4}


def test_temperature_sets_the_draws(corpora: dict[str, Path]) -> None:
    for temperature, want in ((1.0, {"a": 40, "b": 12}), (0.0, {"a": 26, "b": 26})):
        stream = mixture(corpora, temperature=temperature)
        epoch = list(islice(iter(stream), len(stream)))
        assert len(stream) == 52 and stream.epoch == 1  # one epoch = the docs of both
        assert Counter(d.user_data[CORPUS_KEY] for d in epoch) == want, temperature
    # proportional: one epoch of the mixture reads each corpus exactly once
    stream = mixture(corpora, temperature=1.0)
    epoch = list(islice(iter(stream), 52))
    assert sorted(keys(epoch)) == sorted([("a", f"doc-{i}") for i in range(40)] + [("b", f"doc-{i}") for i in range(12)])


def test_same_seed_same_interleave(corpora: dict[str, Path]) -> None:
    first = keys(islice(iter(mixture(corpora, "abc", temperature=0.5, seed=7)), 300))
    assert keys(islice(iter(mixture(corpora, "abc", temperature=0.5, seed=7)), 300)) == first
    other = keys(islice(iter(mixture(corpora, "abc", temperature=0.5, seed=8)), 300))
    assert other != first  # the seed shuffles each corpus ...
    assert [c for c, _ in other] == [c for c, _ in first]  # ... the schedule is the weights' alone


def test_rank_shares_are_disjoint_and_cover_each_corpus(corpora: dict[str, Path]) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}
    for rank in range(2):
        stream = mixture(corpora, rank=rank, world_size=2, seed=3)
        assert len(stream) == 26
        for corpus, doc_id in keys(islice(iter(stream), 26)):  # one epoch of this rank: its shares once
            seen[corpus].append(doc_id)
    assert sorted(seen["a"]) == sorted(f"doc-{i}" for i in range(40))  # no doc twice, none dropped
    assert sorted(seen["b"]) == sorted(f"doc-{i}" for i in range(12))


def test_stream_state_round_trips_mid_epoch_and_across_epochs(corpora: dict[str, Path]) -> None:
    straight = keys(islice(iter(mixture(corpora, "abc", temperature=0.3)), 400))
    for cut in (1, 37, 57, 58, 131, 333):  # 58 = one epoch (40 + 12 + 6)
        stream = mixture(corpora, "abc", temperature=0.3)
        head = keys(islice(iter(stream), cut))
        state = json.loads(json.dumps(stream.state_dict()))
        resumed = mixture(corpora, "abc", temperature=0.3)
        resumed.load_state_dict(state)
        assert head + keys(islice(iter(resumed), 400 - cut)) == straight, cut


BATCHER = {"_use_": "distnlp.batch_by_words.v1", "size": {"_use_": "distnlp.compounding.v1", "start": 30, "stop": 120, "compound": 1.05},
           "tolerance": 0.3}


def next_batch(batches: ResumableBatches) -> list:
    """The next batch of a lone replica: it opens the next epoch itself when it finishes one
    (with several, the training loop does once every rank has)."""
    while not (batch := batches.take()):
        batches.begin_epoch(batches.reached_epoch)
    return batch


def test_batches_resume_exactly_with_docs_pending_across_corpora(corpora: dict[str, Path]) -> None:
    """A batcher holds docs back (overflow), so the earliest pending doc can be many draws behind
    the stream: the saved state must be the whole mixture's from before that doc, not its cursor
    alone (with only (epoch, position) moved back, every corpus would resume too far ahead)."""

    def fresh() -> ResumableBatches:
        return ResumableBatches(mixture(corpora, "abc", temperature=0.5, seed=5), resolve(BATCHER))

    n, cuts = 80, (9, 23, 41, 66)
    straight = fresh()
    reference, tagged = [], []
    for i in range(n):
        if i in cuts:
            straight.restart()  # what a checkpoint does
        batch = next_batch(straight)
        reference.append(keys(batch))
        tagged += [(tuple(d.user_data["_distnlp_cursor"]), key) for d, key in zip(batch, keys(batch))]
    assert straight.epoch >= 3  # several epochs of the mixture, and of each corpus, were crossed
    # The restarts dropped or repeated nothing: each doc emitted is the stream's doc at its
    # cursor, each cursor once, and every cursor up to the last emitted one is there.
    flat = mixture(corpora, "abc", temperature=0.5, seed=5)
    size = len(flat)
    epochs = max(c for c, _ in tagged)[0] + 1
    plain = {(i // size, i % size): key for i, key in enumerate(keys(islice(iter(flat), epochs * size)))}
    assert len({c for c, _ in tagged}) == len(tagged)
    assert all(plain[c] == key for c, key in tagged)
    last = max(c for c, _ in tagged)
    assert {c for c, _ in tagged} | set(straight._pending) >= {c for c in plain if c <= last}
    got: list[list[tuple[str, str]]] = []
    run = fresh()
    for start, stop in zip((0, *cuts), (*cuts, n)):
        got += [keys(next_batch(run)) for _ in range(stop - start)]
        state = json.loads(json.dumps(run.state_dict()))  # a kill: only the checkpoint survives
        run = fresh()
        run.load_state_dict(state)
    assert got == reference


def test_single_corpus_stays_a_docstream(corpora: dict[str, Path]) -> None:
    stream = open_training_stream([CorpusEntry("a", str(corpora["a"]))], temperature=1.0, rank=0, world_size=1, seed=0)
    assert type(stream) is DocStream and stream.info.label == "corpus.train"


def test_resume_errors_are_one_line(corpora: dict[str, Path]) -> None:
    single = ResumableBatches(DocStream(corpora["a"], infinite=True), resolve(BATCHER))
    next(single)
    batches = ResumableBatches(mixture(corpora), resolve(BATCHER))
    with pytest.raises(CheckpointError, match=r"reads one corpus, this run reads corpora \['a', 'b'\]") as err:
        batches.load_state_dict(single.state_dict())
    assert "\n" not in str(err.value)
    other = ResumableBatches(mixture(corpora, "abc"), resolve(BATCHER))
    with pytest.raises(CheckpointError, match="corpus.train it was saved with"):
        batches.load_state_dict(other.state_dict())
    two = [ResumableBatches(mixture(corpora, rank=r, world_size=2), resolve(BATCHER)).state_dict() for r in range(2)]
    with pytest.raises(CheckpointError, match="num_workers=2"):  # another number of replicas: not for mixtures
        batches.load_resplit(two)
    with pytest.raises(ConfigError, match="world_size"):
        batches.load_state_dict(two[1])
