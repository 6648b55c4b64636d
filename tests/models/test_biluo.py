from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp.models.biluo import (
    allowed_transitions,
    biluo_labels,
    biluo_tags_from_spans,
    biluo_to_iob2,
    iob2_tags_from_spans,
    spans_from_biluo_tags,
    spans_from_iob2_tags,
    viterbi_decode,
)

LABELS = ["PER", "LOC", "ORG"]


@st.composite
def doc_spans(draw, labels=LABELS, max_len=15):
    n = draw(st.integers(0, max_len))
    spans, i = [], 0
    while i < n:
        if draw(st.booleans()):
            e = draw(st.integers(i + 1, min(n, i + 4)))
            spans.append((i, e, draw(st.sampled_from(labels))))
            i = e
        else:
            i += 1
    return n, spans


def test_biluo_labels_are_deterministic():
    assert biluo_labels(["PER", "LOC"]) == biluo_labels(["LOC", "PER", "LOC"])
    assert biluo_labels(["PER", "LOC"]) == ["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC", "B-PER", "I-PER", "L-PER", "U-PER"]


def test_tags_from_spans():
    assert biluo_tags_from_spans(6, [(0, 1, "PER"), (2, 5, "LOC")]) == ["U-PER", "O", "B-LOC", "I-LOC", "L-LOC", "O"]
    assert iob2_tags_from_spans(6, [(0, 1, "PER"), (1, 3, "PER")]) == ["B-PER", "B-PER", "I-PER", "O", "O", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        biluo_tags_from_spans(5, [(0, 3, "A"), (2, 4, "B")])
    with pytest.raises(ValueError, match="outside"):
        biluo_tags_from_spans(3, [(2, 4, "A")])


@given(doc_spans())
def test_round_trips(ns):
    n, spans = ns
    tags = biluo_tags_from_spans(n, spans)
    assert spans_from_biluo_tags(tags, strict=True) == spans
    assert spans_from_iob2_tags(iob2_tags_from_spans(n, spans)) == spans
    assert biluo_to_iob2(tags) == iob2_tags_from_spans(n, spans)


def test_malformed_is_repaired():
    assert spans_from_biluo_tags(["I-PER", "L-PER"]) == [(0, 2, "PER")]
    assert spans_from_biluo_tags(["B-PER", "I-PER"]) == [(0, 2, "PER")]  # open at the end
    assert spans_from_biluo_tags(["B-PER", "O", "L-PER"]) == [(0, 1, "PER"), (2, 3, "PER")]
    assert spans_from_biluo_tags(["B-PER", "L-LOC"]) == [(0, 1, "PER"), (1, 2, "LOC")]
    assert spans_from_biluo_tags(["B-PER", "B-LOC", "L-LOC"]) == [(0, 1, "PER"), (1, 3, "LOC")]
    assert spans_from_biluo_tags(["-", "U-PER", None]) == [(1, 2, "PER")]
    for bad in (["I-PER"], ["B-PER"], ["B-PER", "O"], ["L-PER"], ["B-PER", "L-LOC"]):
        with pytest.raises(ValueError):
            spans_from_biluo_tags(bad, strict=True)
    with pytest.raises(ValueError, match="invalid"):
        spans_from_biluo_tags(["X-PER"])


def test_allowed_transitions():
    labels = biluo_labels(["A", "B"])
    start, trans, end = allowed_transitions(labels)
    ix = {t: i for i, t in enumerate(labels)}
    assert start[ix["O"]] and start[ix["B-A"]] and start[ix["U-B"]]
    assert not start[ix["I-A"]] and not start[ix["L-A"]]
    assert end[ix["L-A"]] and end[ix["U-A"]] and not end[ix["B-A"]] and not end[ix["I-A"]]
    assert trans[ix["B-A"], ix["I-A"]] and trans[ix["I-A"], ix["L-A"]] and not trans[ix["B-A"], ix["L-B"]]
    assert not trans[ix["B-A"], ix["O"]] and not trans[ix["O"], ix["I-A"]] and trans[ix["L-A"], ix["B-B"]]


def test_viterbi_matches_brute_force():
    labels = biluo_labels(["A"])
    masks = allowed_transitions(labels)
    g = torch.Generator().manual_seed(0)
    import itertools

    for T in range(1, 5):
        scores = torch.randn(1, T, len(labels), generator=g)
        best, best_seq = float("-inf"), None
        for seq in itertools.product(range(len(labels)), repeat=T):
            tags = [labels[i] for i in seq]
            try:
                spans_from_biluo_tags(tags, strict=True)
            except ValueError:
                continue
            s = sum(float(scores[0, t, i]) for t, i in enumerate(seq))
            if s > best:
                best, best_seq = s, list(seq)
        assert viterbi_decode(scores, [T], masks) == [best_seq]


def test_viterbi_padding_and_empty():
    labels = biluo_labels(["A"])
    masks = allowed_transitions(labels)
    scores = torch.zeros(3, 4, len(labels))
    scores[:, :, labels.index("B-A")] = 5.0  # B everywhere would be ill-formed
    out = viterbi_decode(scores, [4, 0, 1], masks)
    assert [len(x) for x in out] == [4, 0, 1]
    for seq in out:
        spans_from_biluo_tags([labels[i] for i in seq], strict=True)
    assert viterbi_decode(torch.zeros(0, 0, len(labels)), [], masks) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_viterbi_is_always_well_formed(lengths, seed):
    labels = biluo_labels(LABELS)
    masks = allowed_transitions(labels)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(len(lengths), max(lengths), len(labels), generator=g) * 5
    for n, seq in zip(lengths, viterbi_decode(scores, lengths, masks)):
        assert len(seq) == n
        tags = [labels[i] for i in seq]
        spans = spans_from_biluo_tags(tags, strict=True)
        assert biluo_tags_from_spans(n, spans) == tags
