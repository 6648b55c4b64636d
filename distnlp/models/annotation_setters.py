"""What the transformer leaves on `doc.trf_data` after prediction: a registered annotation setter.

A setter is `setter(docs, output: TransformerBatchOutput) -> None`, called by
`TransformerEncoder.annotate(docs, features)` after the forward of those features in eval mode
(as spacy-transformers calls `set_extra_annotations(docs, FullTransformerBatch)`).

- `distnlp.null_annotation_setter.v1()` (default): stores nothing (and the encoder then keeps no
  outputs around after its forward).
- `distnlp.trf_data_setter.v1(store_hidden=True)`: `doc.trf_data = TransformerData(...)` per doc:
  the doc's spans, wordpiece ids and strings (special tokens included, spans concatenated in
  order), the alignment word -> wordpiece positions, and the last layer's hidden states.

A custom setter gets the same `TransformerBatchOutput` and may call `output.doc_data()` or read
`output.hidden` (the flat padded last-layer output on the device) and `output.rows` directly.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.doc import Doc
from ..registry import annotation_setters
from .alignment import DocWordpieces

__all__ = [
    "AnnotationSetter",
    "SpanRow",
    "TransformerBatchOutput",
    "TransformerData",
    "configure_null_annotation_setter",
    "configure_trf_data_setter",
    "null_annotation_setter",
]


@dataclass
class SpanRow:
    """One transformer input row: words [start, end) of docs[doc], pieces [lo, hi) of that doc."""

    doc: int
    start: int
    end: int
    lo: int
    hi: int
    pair_words: np.ndarray  # doc-local word index of each (word, piece) pair
    pair_pieces: np.ndarray  # doc-local piece index of each pair (in [lo, hi))
    flat_start: int = -1  # index of the row's first position (a special token) in the flat output
    length: int = 0  # prefix + (hi - lo) + suffix


@dataclass
class TransformerData:
    """One doc's transformer data (spans concatenated in order; special tokens included)."""

    spans: list[tuple[int, int]]
    span_lengths: list[int]  # wordpieces per span, special tokens included
    input_ids: np.ndarray  # int64 [n_wordpieces]
    strings: list[str]
    align_lengths: np.ndarray  # int64 [n_words]: how many wordpiece positions each word has
    align_data: np.ndarray  # int64: the positions, word after word (into input_ids / hidden rows)
    hidden: np.ndarray | None = field(default=None, repr=False)  # float32 [n_wordpieces, width]

    def wordpieces_of(self, i: int) -> np.ndarray:
        """Positions (into input_ids / hidden) aligned to word i; empty for a word with none."""
        start = int(self.align_lengths[:i].sum())
        return self.align_data[start : start + int(self.align_lengths[i])]

    @property
    def width(self) -> int:
        return 0 if self.hidden is None else int(self.hidden.shape[-1])


@dataclass
class TransformerBatchOutput:
    """Everything about one batch's transformer forward that a setter may want."""

    docs: list[Doc]
    rows: list[SpanRow]
    doc_pieces: list[DocWordpieces]
    prefix_ids: list[int]
    suffix_ids: list[int]
    prefix_strings: list[str]
    suffix_strings: list[str]
    hidden: Tensor  # [n_flat, width]: last layer, every sub-batch's padded rows flattened and concatenated

    def doc_data(self, store_hidden: bool = True) -> list[TransformerData]:
        by_doc: list[list[SpanRow]] = [[] for _ in self.docs]
        for row in self.rows:
            by_doc[row.doc].append(row)
        hidden_all = None
        if store_hidden and self.rows:
            index = np.concatenate([np.arange(r.flat_start, r.flat_start + r.length) for r in self.rows])
            picked = self.hidden.index_select(0, torch.as_tensor(index, device=self.hidden.device))
            hidden_all = picked.float().cpu().numpy()
        row_pos: dict[int, int] = {}
        pos = 0
        for r in self.rows:
            row_pos[id(r)] = pos
            pos += r.length
        pre, suf = len(self.prefix_ids), len(self.suffix_ids)
        out: list[TransformerData] = []
        for d, rows in enumerate(by_doc):
            rows.sort(key=lambda r: (r.start, r.end))
            pieces = self.doc_pieces[d]
            ids: list[np.ndarray] = []
            strings: list[str] = []
            words: list[np.ndarray] = []
            positions: list[np.ndarray] = []
            hidden_parts: list[np.ndarray] = []
            offset = 0
            for r in rows:
                ids += [np.asarray(self.prefix_ids, dtype=np.int64), pieces.ids[r.lo : r.hi], np.asarray(self.suffix_ids, dtype=np.int64)]
                strings += self.prefix_strings + pieces.strings[r.lo : r.hi] + self.suffix_strings
                words.append(r.pair_words)
                positions.append(offset + pre + (r.pair_pieces - r.lo))
                if hidden_all is not None:
                    hidden_parts.append(hidden_all[row_pos[id(r)] : row_pos[id(r)] + r.length])
                offset += r.length
            n_words = len(self.docs[d])
            w = np.concatenate(words) if words else np.zeros(0, dtype=np.int64)
            p = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
            order = np.argsort(w, kind="stable")
            out.append(TransformerData(
                spans=[(r.start, r.end) for r in rows],
                span_lengths=[r.length for r in rows],
                input_ids=np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
                strings=strings,
                align_lengths=np.bincount(w, minlength=n_words).astype(np.int64),
                align_data=p[order].astype(np.int64),
                hidden=(np.concatenate(hidden_parts) if hidden_parts else None) if hidden_all is not None else None,
            ))
            assert offset == sum(r.length for r in rows) and pre + suf >= 0
        return out


AnnotationSetter = Callable[[Sequence[Doc], TransformerBatchOutput], None]


def null_annotation_setter(docs: Sequence[Doc], output: TransformerBatchOutput) -> None:
    """Store nothing."""


@annotation_setters("distnlp.null_annotation_setter.v1")
def configure_null_annotation_setter() -> AnnotationSetter:
    return null_annotation_setter


@annotation_setters("distnlp.trf_data_setter.v1")
def configure_trf_data_setter(store_hidden: bool = True) -> AnnotationSetter:
    """doc.trf_data = TransformerData (wordpieces, alignment, last hidden layer if store_hidden)."""

    def set_trf_data(docs: Sequence[Doc], output: TransformerBatchOutput) -> None:
        for doc, data in zip(docs, output.doc_data(store_hidden=bool(store_hidden))):
            doc.trf_data = data

    return set_trf_data


def is_null_setter(setter: Any) -> bool:
    return setter is None or setter is null_annotation_setter
