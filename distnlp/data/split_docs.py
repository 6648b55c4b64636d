"""Long training docs cut at sentence boundaries into pieces of at most `max_words` words.

Replicas wait for the slowest one at every step, and a step's per-rank batch is made of whole
docs: with documents of hundreds or thousands of words (UD EWT's mean 379, longest 5,875), one
rank's batch is often one long doc that dwarfs the others', and the rest wait. Cut into pieces of
a few sentences, the batcher fills every rank's batch to within a piece of its word budget
(`corpus.split_length`; BENCHMARKS.md, "Balanced replicas").

spaCy's `Corpus(max_length=...)` cuts a long doc into single sentences; here a piece keeps as many
whole sentences as fit, so context is cut only where it must be. A cut is made
only at a sentence start that no dependency arc and no entity crosses, so every piece is a
well-formed doc with its heads inside it; a sentence longer than `max_words` stays whole (the
parser bounds its own lengths). Docs with document-level categories are never cut (a text
class belongs to the whole text), nor docs without sentence boundaries.
"""
from __future__ import annotations

from itertools import accumulate

from .doc import ANNOTATION_COLUMNS, Doc


def split_at_sentences(doc: Doc, max_words: int) -> list[Doc]:
    """`doc` itself when it needs no cut (or cannot be cut), else its pieces in order."""
    n = len(doc)
    if max_words <= 0 or n <= max_words or doc.sent_starts is None or doc.cats:
        return [doc]
    cuts = _cuts(doc, max_words)
    if not cuts:
        return [doc]
    bounds = [0, *cuts, n]
    return [_piece(doc, a, b) for a, b in zip(bounds, bounds[1:])]


def _cuts(doc: Doc, max_words: int) -> list[int]:
    """Token indices to cut before: greedy, each piece as many whole sentences as fit."""
    n = len(doc)
    # crossed[b] > 0: an arc or an entity spans the gap before token b, so b is no place to cut.
    delta = [0] * (n + 1)
    for i, h in enumerate(doc.heads or ()):
        if h is not None and h != i:
            lo, hi = min(i, int(h)), max(i, int(h))
            delta[lo + 1] += 1
            delta[hi + 1] -= 1
    for start, end, _ in doc.ent_spans or ():
        if end - start > 1:
            delta[start + 1] += 1
            delta[end] -= 1
    crossed = list(accumulate(delta))
    starts = [b for b in range(1, n) if doc.sent_starts[b] and not crossed[b]]
    cuts: list[int] = []
    piece_start = 0
    last_start = 0  # the latest place to cut seen since the piece began
    for b in [*starts, n]:
        if b - piece_start > max_words and last_start > piece_start:
            cuts.append(last_start)
            piece_start = last_start
        last_start = b
    return cuts


def _piece(doc: Doc, a: int, b: int) -> Doc:
    columns = {name: None if getattr(doc, name) is None else list(getattr(doc, name)[a:b]) for name in ANNOTATION_COLUMNS}
    if doc.heads is not None:
        columns["heads"] = [None if h is None else int(h) - a for h in doc.heads[a:b]]
    sent_starts = list(doc.sent_starts[a:b]) if doc.sent_starts is not None else None
    if sent_starts:
        sent_starts[0] = True
    ents = None if doc.ent_spans is None else [(s - a, e - a, label) for s, e, label in doc.ent_spans if a <= s and e <= b]
    missing = None
    if doc.ents_missing:
        missing = [(max(s, a) - a, min(e, b) - a) for s, e in doc.ents_missing if s < b and e > a] or None
    return Doc(words=list(doc.words[a:b]), spaces=list(doc.spaces[a:b]), doc_id=doc.doc_id, sent_starts=sent_starts,
               ent_spans=ents, ents_missing=missing, user_data=dict(doc.user_data), **columns)
