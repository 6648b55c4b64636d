"""Corpus words <-> wordpieces, from a fast tokenizer's character offsets.

The corpus words are given and never re-tokenized: a doc's text is rebuilt from its words and
spaces (`Doc.text`), the fast tokenizer runs once over that text (no special tokens, no
truncation, no padding), and every wordpiece is mapped back to the words whose characters it
overlaps, through its offset mapping. Because the tokenizer sees the real text, byte-level BPE
models (RoBERTa, GPT-2) get their space-prefixed pieces exactly where the text has spaces, and
nothing has to add or strip a prefix space.

Per wordpiece we keep `first_word` and `last_word`, the first and last word it overlaps:
- a piece inside one word: first == last == that word (accents, emoji and byte pieces of one
  character all share that character's offsets);
- a piece across a word boundary (two words with no space between them merged by BPE):
  first < last, and the piece is aligned to every word it touches;
- a piece that overlaps no word (whitespace, a trimmed "Ġ" with empty offsets): it sits in the gap
  before word g, and is stored as first = g, last = g - 1 (an empty range).
Both arrays are non-decreasing, so the pieces of any word range [start, end) are one contiguous
range of pieces, found with two binary searches (`piece_range`).

A word with no piece (whitespace words, characters the normalizer removes) gets no alignment; the
encoder gives it a zero vector.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DocWordpieces", "align_offsets", "word_char_spans"]


def word_char_spans(words: Sequence[str], spaces: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Start and end character offsets of each word in `"".join(w + " " * s)`."""
    lens = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    gaps = np.fromiter((1 if s else 0 for s in spaces), dtype=np.int64, count=len(spaces))
    starts = np.zeros(len(words), dtype=np.int64)
    if len(words) > 1:
        starts[1:] = np.cumsum(lens + gaps)[:-1]
    return starts, starts + lens


def align_offsets(word_starts: np.ndarray, word_ends: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first_word, last_word) for every piece with character offsets `offsets` [n, 2].

    first = the first word whose end is after the piece's start; last = the last word whose start
    is before the piece's end. A piece with empty offsets inside a word aligns to that word; a
    piece that overlaps no word gets last == first - 1.
    """
    if len(offsets) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    s = offsets[:, 0]
    e = offsets[:, 1]
    first = np.searchsorted(word_ends, s, side="right").astype(np.int64)
    # an empty piece (s == e) counts as the point s: inside a word iff start < s < end
    last = (np.searchsorted(word_starts, np.maximum(e, s), side="left") - 1).astype(np.int64)
    return first, last


@dataclass
class DocWordpieces:
    """One doc's wordpieces (no special tokens) and their alignment to its words."""

    ids: np.ndarray  # int64 [n_pieces]
    strings: list[str]
    first_word: np.ndarray  # int64 [n_pieces], non-decreasing
    last_word: np.ndarray  # int64 [n_pieces], non-decreasing; < first_word for a piece in a gap
    n_words: int

    @classmethod
    def from_encoding(cls, words: Sequence[str], spaces: Sequence[bool], encoding: object) -> "DocWordpieces":
        """From a `tokenizers.Encoding` of the doc's text (encoded without special tokens)."""
        ws, we = word_char_spans(words, spaces)
        ids = np.asarray(encoding.ids, dtype=np.int64)  # type: ignore[attr-defined]
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)  # type: ignore[attr-defined]
        first, last = align_offsets(ws, we, offsets)
        return cls(ids, list(encoding.tokens), first, last, len(words))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.ids)

    def word_counts(self) -> np.ndarray:
        """Number of pieces aligned to each word (a piece across a boundary counts for each word)."""
        diff = np.zeros(self.n_words + 1, dtype=np.int64)
        ok = self.first_word <= self.last_word
        np.add.at(diff, self.first_word[ok], 1)
        np.add.at(diff, self.last_word[ok] + 1, -1)
        return np.cumsum(diff[:-1])

    def piece_range(self, start: int, end: int) -> tuple[int, int]:
        """The contiguous pieces [lo, hi) aligned to words [start, end) (gap pieces inside included)."""
        lo = int(np.searchsorted(self.last_word, start, side="left"))
        hi = int(np.searchsorted(self.first_word, end - 1, side="right"))
        return lo, max(lo, hi)

    def pairs(self, start: int, end: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(word, piece) pairs for pieces [lo, hi) and words [start, end), sorted by word, then piece."""
        first = np.maximum(self.first_word[lo:hi], start)
        last = np.minimum(self.last_word[lo:hi], end - 1)
        n = np.maximum(last - first + 1, 0)
        pieces = np.repeat(np.arange(lo, hi, dtype=np.int64), n)
        if len(pieces) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        # word of each pair: first + rank within its piece's run
        run_start = np.repeat(np.cumsum(n) - n, n)
        words = np.repeat(first, n) + (np.arange(len(pieces)) - run_start)
        order = np.argsort(words, kind="stable")
        return words[order], pieces[order]
