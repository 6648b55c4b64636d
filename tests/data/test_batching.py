"""Batchers: spaCy's own minibatch_by_words cases, plus properties on random lengths."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp.data.batching import batch_by_padded, batch_by_sequence, batch_by_words
from distnlp.data.doc import Doc
from distnlp.registry import batchers
from distnlp.schedules import compounding


def doc(n: int) -> Doc:
    return Doc(words=["w"] * n, spaces=[True] * n)


# Ported from spaCy's spacy/tests/test_util.py (test_util_minibatch, size 1000, tolerance 0.2).
@pytest.mark.parametrize(
    "doc_sizes, expected_batches",
    [
        ([400, 400, 199], [3]),
        ([400, 400, 199, 3], [4]),
        ([400, 400, 199, 3, 200], [3, 2]),
        ([400, 400, 199, 3, 1], [5]),
        ([400, 400, 199, 3, 1, 1500], [5]),  # 1500 is discarded
        ([400, 400, 199, 3, 1, 200], [3, 3]),
        ([400, 400, 199, 3, 1, 999], [3, 3]),
        ([400, 400, 199, 3, 1, 999, 999], [3, 2, 1, 1]),
        ([1, 2, 999], [3]),
        ([1, 2, 999, 1], [4]),
        ([1, 200, 999, 1], [2, 2]),
        ([1, 999, 200, 1], [2, 2]),
    ],
)
def test_spacy_minibatch_discard(doc_sizes: list[int], expected_batches: list[int]) -> None:
    batches = list(batch_by_words([doc(n) for n in doc_sizes], size=1000, tolerance=0.2, discard_oversize=True))
    assert [len(b) for b in batches] == expected_batches
    for b in batches:
        assert sum(len(d) for d in b) < 1000 * 1.2


# Ported from spaCy's test_util_minibatch_oversize: oversize docs come alone.
@pytest.mark.parametrize(
    "doc_sizes, expected_batches",
    [
        ([400, 4000, 199], [1, 2]),
        ([400, 400, 199, 3000, 200], [1, 4]),
        ([400, 400, 199, 3, 1, 1500], [1, 5]),
        ([400, 400, 199, 3000, 2000, 200, 200], [1, 1, 3, 2]),
        ([1, 2, 9999], [1, 2]),
        ([2000, 1, 2000, 1, 1, 1, 2000], [1, 1, 1, 4]),
    ],
)
def test_spacy_minibatch_oversize(doc_sizes: list[int], expected_batches: list[int]) -> None:
    batches = list(batch_by_words([doc(n) for n in doc_sizes], size=1000, tolerance=0.2, discard_oversize=False))
    assert [len(b) for b in batches] == expected_batches


def test_order_and_overflow_handcrafted() -> None:
    # 6 fits, 5 overflows within tolerance (6+5 <= 12), 3 does not fit: the batch [6] goes out,
    # the overflow [5] seeds the next batch and 3 joins it.
    assert [[len(d) for d in b] for b in batch_by_words([doc(6), doc(5), doc(3)], size=10, tolerance=0.2)] == [[6], [5, 3]]
    # tolerance 0: no overflow buffer.
    assert [[len(d) for d in b] for b in batch_by_words([doc(6), doc(5), doc(3)], size=10, tolerance=0.0)] == [[6], [5, 3]]
    assert [[len(d) for d in b] for b in batch_by_words([doc(4), doc(4), doc(4)], size=10, tolerance=0.0)] == [[4, 4], [4]]


def test_schedule_is_stepped_once_per_batch() -> None:
    steps: list[int] = []

    def size(step: int) -> float:
        steps.append(step)
        return 10.0 * (step + 1)

    batches = list(batch_by_words([doc(5) for _ in range(12)], size=size, tolerance=0.0))
    assert [sum(len(d) for d in b) for b in batches] == [10, 20, 30]
    assert steps == [0, 1, 2]  # one size per batch started, as spaCy's next(size_)
    # an iterator and a compounding schedule work too
    assert len(list(batch_by_words([doc(5)] * 4, size=iter([10, 10, 10])))) == 2
    assert len(list(batch_by_words([doc(1)] * 10, size=compounding(1.0, 4.0, 2.0), tolerance=0.0))) == 4


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), max_size=80),
    size=st.integers(1, 100),
    tolerance=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
    discard=st.booleans(),
)
def test_batch_by_words_properties(lengths: list[int], size: int, tolerance: float, discard: bool) -> None:
    items = list(range(len(lengths)))
    batches = list(batch_by_words(items, size=size, tolerance=tolerance, discard_oversize=discard,
                                  get_length=lambda i: lengths[i]))
    limit = size * (1 + tolerance)
    out = [i for b in batches for i in b]
    oversize = {i for i in items if lengths[i] > size + size * tolerance}
    # every item once, except dropped oversize ones
    assert sorted(out) == sorted(i for i in items if not (discard and i in oversize))
    for b in batches:
        assert b
        if sum(lengths[i] for i in b) > limit:
            assert len(b) == 1 and b[0] in oversize


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), max_size=80), size=st.integers(1, 120),
       buffer=st.integers(1, 20), discard=st.booleans())
def test_batch_by_padded_properties(lengths: list[int], size: int, buffer: int, discard: bool) -> None:
    items = list(range(len(lengths)))
    batches = list(batch_by_padded(items, size=size, buffer=buffer, discard_oversize=discard,
                                   get_length=lambda i: lengths[i]))
    out = sorted(i for b in batches for i in b)
    for b in batches:
        padded = max(lengths[i] for i in b) * len(b)
        assert padded <= size or len(b) == 1
        if discard:
            assert padded < size
    if not discard:
        assert out == items
    # a batch never mixes items of different buffer windows
    for b in batches:
        assert len({i // buffer for i in b}) == 1


def test_batch_by_padded_uses_get_length() -> None:
    docs = [doc(2) for _ in range(6)]
    # with 3 "wordpieces" per word, 6 pieces per doc: 2 docs per batch of 12
    batches = list(batch_by_padded(docs, size=12, get_length=lambda d: 3 * len(d)))
    assert [len(b) for b in batches] == [2, 2, 2]
    assert [len(b) for b in batch_by_padded(docs, size=12)] == [6]


def test_batch_by_sequence() -> None:
    assert [len(b) for b in batch_by_sequence(range(7), 3)] == [3, 3, 1]
    assert [len(b) for b in batch_by_sequence(range(7), iter([1, 2, 10, 10]))] == [1, 2, 4]


def test_registered_factories() -> None:
    docs = [doc(n) for n in (400, 400, 199, 3, 1, 1500)]
    by_words = batchers.get("distnlp.batch_by_words.v1")(size=1000, tolerance=0.2, discard_oversize=True)
    assert [len(b) for b in by_words(docs)] == [5]
    padded = batchers.get("distnlp.batch_by_padded.v1")(size=1000, buffer=4)
    assert sum(len(b) for b in padded(docs)) == 6
    by_seq = batchers.get("distnlp.batch_by_sequence.v1")(size=4)
    assert [len(b) for b in by_seq(docs)] == [4, 2]
