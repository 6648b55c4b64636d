"""Span getters: which word ranges of each doc the transformer sees, one forward row each.

Contract (what a registered getter returns, and what the encoder does with it):

    @span_getters("user.my_spans.v1")
    def configure(**settings) -> Callable:
        def get_spans(docs, wordpiece_counts=None) -> list[list[tuple[int, int]]]: ...
        return get_spans

- `docs`: the batch's `Doc`s. `wordpiece_counts[i]` is an int numpy array with the number of
  wordpieces of each word of `docs[i]` (special tokens not included); a getter that does not
  need it may take `docs` alone (the encoder looks at the signature).
- It returns, per doc, a list of word spans `(start, end)` (end exclusive) in word indices, or
  objects with `.start` / `.end` such as `distnlp.data.doc.Span` (so spaCy-style getters that
  return `doc.sents` pieces work). Spans may overlap: a word seen by several spans gets the
  average of its pooled vectors. A word in no span gets a zero vector, and is counted
  (`TransformerEncoder.truncation["words_uncovered"]`) and logged.
- The encoder, not the getter, enforces the model's maximum length: a span with more wordpieces
  than fit (model maximum minus special tokens, and at most `max_batch_items`) is split on word
  boundaries; a single word longer than that keeps its first pieces. Both are counted and logged.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.doc import Doc
from ..errors import ConfigError
from ..registry import span_getters

__all__ = ["SpanGetter", "configure_doc_spans", "configure_sent_spans", "configure_strided_spans", "strided_word_spans"]

log = logging.getLogger(__name__)

SpanGetter = Callable[..., list[list[Any]]]


@span_getters("distnlp.doc_spans.v1")
def configure_doc_spans() -> SpanGetter:
    """One span per doc (the encoder splits a doc longer than the model's maximum, counted)."""

    def get_doc_spans(docs: Sequence[Doc], wordpiece_counts: Sequence[np.ndarray] | None = None) -> list[list[tuple[int, int]]]:
        return [[(0, len(doc))] if len(doc) else [] for doc in docs]

    return get_doc_spans


@span_getters("distnlp.sent_spans.v1")
def configure_sent_spans(on_missing: str = "error") -> SpanGetter:
    """One span per sentence, from `doc.sent_starts`.

    on_missing: what to do with a doc that has no sentence starts: "error" (raise) or "doc" (use
    the whole doc as one span, and log a warning once per batch). Docs built from raw text
    (`Pipeline.pipe` on strings, `Doc.copy_unannotated` in evaluation) have no sentence starts.
    """
    if on_missing not in ("error", "doc"):
        raise ConfigError("sent_spans.on_missing", f"must be 'error' or 'doc', not {on_missing!r}")

    def get_sent_spans(docs: Sequence[Doc], wordpiece_counts: Sequence[np.ndarray] | None = None) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = []
        missing = 0
        for doc in docs:
            n = len(doc)
            if n == 0:
                out.append([])
                continue
            if doc.sent_starts is None:
                if on_missing == "error":
                    raise ConfigError(
                        "encoder.model.get_spans",
                        f"distnlp.sent_spans.v1 needs sentence starts, and doc {doc.doc_id!r} has none",
                        "use distnlp.strided_spans.v1, give docs with sent_starts, or set on_missing: doc",
                    )
                missing += 1
                out.append([(0, n)])
                continue
            starts = [i for i in range(n) if i == 0 or doc.sent_starts[i]]
            out.append(list(zip(starts, starts[1:] + [n])))
        if missing:
            log.warning("sent_spans: %d of %d docs have no sentence starts; each is one span", missing, len(docs))
        return out

    return get_sent_spans


def strided_word_spans(counts: np.ndarray, window: int, stride: int) -> list[tuple[int, int]]:
    """Word spans of at most `window` wordpieces starting about every `stride` wordpieces.

    Cut on word boundaries: a span holds the most words whose pieces fit in `window` (at least
    one word); the next span starts at the first word at least `stride` pieces after this span's
    start (and never after its end, so every word is covered). The last span ends at the doc's end.
    """
    n = len(counts)
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=cum[1:])
    spans: list[tuple[int, int]] = []
    s = 0
    while s < n:
        e = int(np.searchsorted(cum, cum[s] + window, side="right")) - 1
        e = min(max(e, s + 1), n)
        spans.append((s, e))
        if e >= n:
            break
        nxt = int(np.searchsorted(cum, cum[s] + stride, side="left"))
        s = min(max(nxt, s + 1), e)
    return spans


@span_getters("distnlp.strided_spans.v1")
def configure_strided_spans(window: int = 128, stride: int = 96) -> SpanGetter:
    """Overlapping windows counted in WORDPIECES (not words), cut on word boundaries.

    stride < window: consecutive windows overlap by about window - stride pieces, and the words in
    the overlap get the average of both windows' vectors. stride == window: no overlap.
    """
    window, stride = int(window), int(stride)
    if window < 1:
        raise ConfigError("strided_spans.window", f"must be >= 1, not {window}")
    if not 1 <= stride <= window:
        raise ConfigError("strided_spans.stride", f"must be between 1 and window ({window}), not {stride}", "a stride larger than the window would skip words")

    def get_strided_spans(docs: Sequence[Doc], wordpiece_counts: Sequence[np.ndarray]) -> list[list[tuple[int, int]]]:
        return [strided_word_spans(np.asarray(c, dtype=np.int64), window, stride) for c in wordpiece_counts]

    return get_strided_spans
