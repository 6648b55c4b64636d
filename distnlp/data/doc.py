"""Doc, Token and Span: the spaCy-like objects that corpora produce and pipelines annotate.

A Doc holds words and spaces (so `doc.text` round-trips) plus optional annotation columns. A
column is None when the annotation is missing, which is different from "every token is O"; a
single token's value is None when only that token's annotation is missing; `ents_missing` lists
the token ranges whose entities are unknown inside a doc that has entity annotation.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ANNOTATION_COLUMNS = ("tags", "pos", "morphs", "lemmas", "deps", "heads")


@dataclass(frozen=True)
class Span:
    doc: "Doc"
    start: int
    end: int
    label_: str = ""

    @property
    def label(self) -> str:
        return self.label_

    @property
    def text(self) -> str:
        return "".join(
            self.doc.words[i] + (" " if self.doc.spaces[i] and i < self.end - 1 else "")
            for i in range(self.start, self.end)
        )

    @property
    def start_char(self) -> int:
        return self.doc.char_offsets()[self.start]

    @property
    def end_char(self) -> int:
        return self.doc.char_offsets()[self.end - 1] + len(self.doc.words[self.end - 1])

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator["Token"]:
        for i in range(self.start, self.end):
            yield Token(self.doc, i)

    def __getitem__(self, i: int) -> "Token":
        return Token(self.doc, range(self.start, self.end)[i])

    @property
    def vector(self) -> np.ndarray:
        return self.doc._mean_vector(self.start, self.end)

    @property
    def root(self) -> "Token":
        """The first token whose head is itself or outside the span (spaCy's Span.root)."""
        for tok in self:
            h = tok.head.i
            if h == tok.i or not self.start <= h < self.end:
                return tok
        return self[0]

    def similarity(self, other: "Span | Doc | Token") -> float:
        return _cosine(self.vector, other.vector)

    def __repr__(self) -> str:
        return f"Span({self.start}, {self.end}, {self.label_!r}, {self.text!r})"


class Token:
    __slots__ = ("doc", "i")

    def __init__(self, doc: "Doc", i: int) -> None:
        self.doc, self.i = doc, i

    def _col(self, name: str) -> Any:
        col = getattr(self.doc, name)
        return None if col is None else col[self.i]

    @property
    def text(self) -> str:
        return self.doc.words[self.i]

    orth_ = text

    @property
    def whitespace_(self) -> str:
        return " " if self.doc.spaces[self.i] else ""

    @property
    def text_with_ws(self) -> str:
        return self.text + self.whitespace_

    @property
    def idx(self) -> int:
        return self.doc.char_offsets()[self.i]

    @property
    def tag_(self) -> str:
        return self._col("tags") or ""

    @property
    def pos_(self) -> str:
        return self._col("pos") or ""

    @property
    def morph(self) -> str:
        return self._col("morphs") or ""

    @property
    def lemma_(self) -> str:
        return self._col("lemmas") or ""

    @property
    def dep_(self) -> str:
        return self._col("deps") or ""

    @property
    def head(self) -> "Token":
        h = self._col("heads")
        return Token(self.doc, self.i if h is None else int(h))

    @property
    def children(self) -> Iterator["Token"]:
        """Tokens whose head is this one, in order (the root is not its own child)."""
        heads = self.doc.heads or ()
        for j, h in enumerate(heads):
            if h == self.i and j != self.i:
                yield Token(self.doc, j)

    @property
    def lefts(self) -> Iterator["Token"]:
        return (t for t in self.children if t.i < self.i)

    @property
    def rights(self) -> Iterator["Token"]:
        return (t for t in self.children if t.i > self.i)

    @property
    def subtree(self) -> Iterator["Token"]:
        """This token and its descendants, in order."""
        inside, frontier = {self.i}, [self.i]
        while frontier:
            frontier = [c.i for i in frontier for c in Token(self.doc, i).children if c.i not in inside]
            inside.update(frontier)
        return (Token(self.doc, i) for i in sorted(inside))

    @property
    def ancestors(self) -> Iterator["Token"]:
        seen, tok = {self.i}, self.head
        while tok.i not in seen:
            yield tok
            seen.add(tok.i)
            tok = tok.head

    @property
    def sent(self) -> Span:
        for span in self.doc.sents:
            if span.start <= self.i < span.end:
                return span
        raise IndexError(self.i)

    @property
    def is_sent_start(self) -> bool | None:
        return self._col("sent_starts")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other.doc is self.doc and other.i == self.i

    def __hash__(self) -> int:
        return hash((id(self.doc), self.i))

    @property
    def ent_iob_(self) -> str:
        """B/I/O, or "" where entity annotation is missing (spaCy's convention)."""
        if self.doc.ents_missing_at(self.i):
            return ""
        for span in self.doc.ents:
            if span.start == self.i:
                return "B"
            if span.start < self.i < span.end:
                return "I"
        return "O" if self.doc.ents is not None else ""

    @property
    def ent_type_(self) -> str:
        for span in self.doc.ents:
            if span.start <= self.i < span.end:
                return span.label_
        return ""

    @property
    def vector(self) -> np.ndarray:
        return self.doc._token_vector(self.i)

    @property
    def has_vector(self) -> bool:
        return self.doc.vocab_vectors is not None and self.doc.vocab_vectors.has(self.text)

    def similarity(self, other: "Token | Span | Doc") -> float:
        return _cosine(self.vector, other.vector)

    def __len__(self) -> int:
        return len(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


@dataclass(eq=False)
class Doc:
    """A tokenized text with optional annotations (None = not annotated)."""

    words: list[str]
    spaces: list[bool]
    doc_id: str | None = None
    sent_starts: list[bool] | None = None
    tags: list[str] | None = None
    pos: list[str] | None = None
    morphs: list[str] | None = None
    lemmas: list[str] | None = None
    deps: list[str] | None = None
    heads: list[int | None] | None = None  # absolute token index; the root points at itself
    ent_spans: list[tuple[int, int, str]] | None = None
    cats: dict[str, float] | None = None
    # Token ranges [start, end) whose entities are unknown (only meaningful when ent_spans is set).
    ents_missing: list[tuple[int, int]] | None = None
    # Set by a pipeline: static vectors table (for Token.vector), the shared embedding's output,
    # and whatever a transformer annotation setter stores.
    vocab_vectors: Any = field(default=None, repr=False)
    tensor: Any = field(default=None, repr=False)
    trf_data: Any = field(default=None, repr=False)
    user_data: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.spaces):
            raise ValueError(f"words ({len(self.words)}) and spaces ({len(self.spaces)}) differ in length")
        self._offsets: list[int] | None = None

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Doc":
        """A Doc from one Parquet row (data/schema.py)."""
        ents = row.get("ents")
        cats = row.get("cats")
        heads = row.get("heads")
        return cls(
            words=list(row["words"]),
            spaces=[bool(s) for s in row["spaces"]],
            doc_id=row.get("doc_id"),
            sent_starts=_opt_list(row.get("sent_starts")),
            tags=_opt_list(row.get("tags")),
            pos=_opt_list(row.get("pos")),
            morphs=_opt_list(row.get("morphs")),
            lemmas=_opt_list(row.get("lemmas")),
            deps=_opt_list(row.get("deps")),
            heads=None if heads is None else [None if h is None else int(h) for h in heads],
            ent_spans=None if ents is None else [(int(e["start"]), int(e["end"]), str(e["label"])) for e in ents],
            cats=None if cats is None else {str(k): float(v) for k, v in (cats.items() if isinstance(cats, Mapping) else cats)},
            ents_missing=_ranges(row.get("ents_missing")),
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "text": self.text,
            "words": list(self.words),
            "spaces": list(self.spaces),
            "sent_starts": self.sent_starts,
            "tags": self.tags,
            "pos": self.pos,
            "morphs": self.morphs,
            "lemmas": self.lemmas,
            "deps": self.deps,
            "heads": self.heads,
            "ents": None if self.ent_spans is None else [
                {"start": s, "end": e, "label": lab} for s, e, lab in self.ent_spans
            ],
            "cats": None if self.cats is None else dict(self.cats),
            "ents_missing": None if not self.ents_missing else [{"start": s, "end": e} for s, e in self.ents_missing],
        }

    def copy_unannotated(self) -> "Doc":
        """Same words and spaces, no annotations: what a pipeline predicts into."""
        return Doc(words=list(self.words), spaces=list(self.spaces), doc_id=self.doc_id)

    # --- spaCy-like views --------------------------------------------------------------------
    @property
    def text(self) -> str:
        return "".join(w + (" " if s else "") for w, s in zip(self.words, self.spaces))

    def char_offsets(self) -> list[int]:
        if self._offsets is None or len(self._offsets) != len(self.words):
            offs, pos = [], 0
            for w, s in zip(self.words, self.spaces):
                offs.append(pos)
                pos += len(w) + (1 if s else 0)
            self._offsets = offs
        return self._offsets

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: int | slice) -> "Token | Span":
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            return Span(self, start, stop)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return Token(self, i)

    def __iter__(self) -> Iterator[Token]:
        for i in range(len(self)):
            yield Token(self, i)

    @property
    def ents(self) -> tuple[Span, ...]:
        return tuple(Span(self, s, e, lab) for s, e, lab in (self.ent_spans or ()))

    @ents.setter
    def ents(self, spans: Sequence[Span | tuple[int, int, str]]) -> None:
        self.ent_spans = [
            (s.start, s.end, s.label_) if isinstance(s, Span) else (int(s[0]), int(s[1]), str(s[2]))
            for s in spans
        ]

    def ents_missing_at(self, i: int) -> bool:
        """Whether token i's entity annotation is unknown (in a missing range, or no ents at all)."""
        if self.ent_spans is None:
            return True
        return any(s <= i < e for s, e in self.ents_missing or ())

    def ent_missing_mask(self) -> list[bool]:
        """Per token: True where the entity annotation is unknown."""
        if self.ent_spans is None:
            return [True] * len(self)
        mask = [False] * len(self)
        for s, e in self.ents_missing or ():
            mask[s:e] = [True] * (e - s)
        return mask

    @property
    def sents(self) -> Iterator[Span]:
        if self.sent_starts is None:
            raise ValueError("this Doc has no sentence boundaries (add a senter, or use a corpus with sentences)")
        start = 0
        for i in range(1, len(self)):
            if self.sent_starts[i]:
                yield Span(self, start, i)
                start = i
        if len(self):
            yield Span(self, start, len(self))

    def char_span(self, start_char: int, end_char: int, label: str = "", alignment_mode: str = "strict") -> Span | None:
        """The tokens covering [start_char, end_char), as spaCy's `Doc.char_span`.

        strict: both ends must fall on token boundaries, else None; contract: only tokens wholly
        inside; expand: every token that overlaps.
        """
        offs = self.char_offsets()
        ends = [o + len(w) for o, w in zip(offs, self.words)]
        if alignment_mode == "strict":
            if start_char not in offs or end_char not in ends:
                return None
            s, e = offs.index(start_char), ends.index(end_char) + 1
        elif alignment_mode == "contract":
            idx = [i for i in range(len(self)) if offs[i] >= start_char and ends[i] <= end_char]
            if not idx:
                return None
            s, e = idx[0], idx[-1] + 1
        elif alignment_mode == "expand":
            idx = [i for i in range(len(self)) if offs[i] < end_char and ends[i] > start_char]
            if not idx:
                return None
            s, e = idx[0], idx[-1] + 1
        else:
            raise ValueError(f"alignment_mode must be strict, contract or expand, not {alignment_mode!r}")
        if e <= s:
            return None
        return Span(self, s, e, label)

    # --- vectors -----------------------------------------------------------------------------
    def _token_vector(self, i: int) -> np.ndarray:
        if self.vocab_vectors is not None:
            return self.vocab_vectors.get(self.words[i])
        if self.tensor is not None:
            return np.asarray(self.tensor[i])
        return np.zeros((0,), dtype=np.float32)

    def _mean_vector(self, start: int, end: int) -> np.ndarray:
        vecs = [self._token_vector(i) for i in range(start, end)]
        if not vecs:
            return np.zeros((0,), dtype=np.float32)
        return np.mean(np.stack(vecs), axis=0)

    @property
    def vector(self) -> np.ndarray:
        return self._mean_vector(0, len(self))

    def similarity(self, other: "Doc | Span | Token") -> float:
        return _cosine(self.vector, other.vector)

    def __repr__(self) -> str:
        return self.text


def _opt_list(v: Any) -> list[Any] | None:
    return None if v is None else list(v)


def _ranges(v: Any) -> list[tuple[int, int]] | None:
    if not v:
        return None
    return [(int(r["start"]), int(r["end"])) if isinstance(r, Mapping) else (int(r[0]), int(r[1])) for r in v]


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-empty, non-overlapping [start, end) ranges covering the same tokens."""
    out: list[tuple[int, int]] = []
    for s, e in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def join_morph(pos: str | None, morph: str | None) -> str | None:
    """The morphologizer's label "POS=<upos>|<feats>"; None when either part is missing."""
    if pos is None or morph is None:
        return None
    return f"POS={pos}|{morph}" if morph else f"POS={pos}"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
