"""Batchers: turn a stream of Docs into batches, with spaCy's exact semantics.

`batch_by_words` and `batch_by_padded` are ports of spaCy's `minibatch_by_words` and
`minibatch_by_padded_size` (spacy/training/batchers.py), so configs and batch sizes carry over.
A size is an int/float, an iterator of sizes, or a schedule `size(step)`; it is advanced once per
batch started (step = batch index), exactly where spaCy calls `next(size_)`. `start` skips the
first sizes: a batcher restarted at a checkpoint, or on resume, continues the schedule where the
last one was instead of starting it again. Every batch yielded is a `SizedBatch` that remembers
which size formed it (`size_index`; None for an oversize item yielded alone, which spaCy's
`minibatch_by_words` does without advancing the size), so the caller knows where to restart.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar, Union

from ..registry import batchers
from ..schedules import Schedule
from .doc import Doc

T = TypeVar("T")
Size = Union[int, float, Schedule, Iterator[int], Iterable[int]]
Batcher = Callable[[Iterable[Doc]], Iterator[list[Doc]]]


class SizedBatch(list):
    """A batch, plus the index of the size (schedule step) that formed it."""

    size_index: int | None = None


def _sized(items: list[T], index: int | None) -> SizedBatch:
    batch = SizedBatch(items)
    batch.size_index = index
    return batch


def _sizes(size: Size, start: int = 0) -> Iterator[float]:
    """spaCy's `Sizing`, plus schedules: a callable is evaluated at step start, start + 1, ..."""
    if isinstance(size, (int, float)) and not isinstance(size, bool):
        return itertools.repeat(size)
    if callable(size) and not isinstance(size, Iterator):
        schedule = size
        return (schedule(step) for step in itertools.count(start))
    return itertools.islice(iter(size), start, None)  # type: ignore[arg-type]


def batch_by_words(
    docs: Iterable[T],
    size: Size,
    tolerance: float = 0.2,
    discard_oversize: bool = False,
    get_length: Callable[[T], int] = len,
    start: int = 0,
) -> Iterator[list[T]]:
    """Batches of about `size` words. Items that overflow the target but fit within
    size * (1 + tolerance) go to an overflow buffer that seeds the next batch; an item larger
    than that is yielded alone, or dropped with `discard_oversize`."""
    size_ = _sizes(size, start)
    target_size = next(size_)
    index = start  # which size of the schedule target_size is
    tol_size = target_size * tolerance
    batch: list[T] = []
    overflow: list[T] = []
    batch_size = 0
    overflow_size = 0
    for seq in docs:
        n_words = get_length(seq)
        if n_words > target_size + tol_size:
            if not discard_oversize:
                yield _sized([seq], None)
        elif overflow_size == 0 and (batch_size + n_words) <= target_size:
            batch.append(seq)
            batch_size += n_words
        elif (batch_size + overflow_size + n_words) <= (target_size + tol_size):
            overflow.append(seq)
            overflow_size += n_words
        else:
            # The batch is full: yield it; the overflow starts the next one.
            if batch:
                yield _sized(batch, index)
            target_size, index = next(size_), index + 1
            tol_size = target_size * tolerance
            batch = overflow
            batch_size = overflow_size
            overflow = []
            overflow_size = 0
            if (batch_size + n_words) <= target_size:
                batch.append(seq)
                batch_size += n_words
            elif (batch_size + n_words) <= (target_size + tol_size):
                overflow.append(seq)
                overflow_size += n_words
            else:
                # Does not fit with the previous overflow either: that overflow is a batch.
                if batch:
                    yield _sized(batch, index)
                target_size, index = next(size_), index + 1
                tol_size = target_size * tolerance
                batch = [seq]
                batch_size = n_words
    batch.extend(overflow)
    if batch:
        yield _sized(batch, index)


def _batch_by_length(seqs: Sequence[T], max_words: float, get_length: Callable[[T], int]) -> list[list[int]]:
    """Indices of `seqs` grouped by length, longest group first, each with
    max length * count <= max_words (a single longer item forms its own group)."""
    lengths_indices = sorted((get_length(seq), i) for i, seq in enumerate(seqs))
    batches: list[list[int]] = []
    batch: list[int] = []
    for length, i in lengths_indices:
        if not batch or length * (len(batch) + 1) <= max_words:
            batch.append(i)
        else:
            batches.append(batch)
            batch = [i]
    if batch:
        batches.append(batch)
    batches = [sorted(b) for b in batches]
    batches.reverse()
    return batches


def batch_by_padded(
    docs: Iterable[T],
    size: Size,
    buffer: int = 256,
    discard_oversize: bool = False,
    get_length: Callable[[T], int] = len,
    start: int = 0,
) -> Iterator[list[T]]:
    """Batches whose padded size (longest item * count) is at most `size`, sorting by length
    within windows of `buffer` items. `get_length` may count wordpieces for transformers."""
    size_ = _sizes(size, start)
    for index, outer in enumerate(batch_by_sequence(docs, buffer), start):
        target_size = next(size_)
        for indices in _batch_by_length(outer, target_size, get_length):
            sub = [outer[i] for i in indices]
            # spaCy measures this with len() whatever get_length is; we use get_length so a
            # wordpiece budget is really a wordpiece budget.
            padded_size = max(get_length(seq) for seq in sub) * len(sub)
            if not (discard_oversize and padded_size >= target_size):
                yield _sized(sub, index)


def batch_by_sequence(docs: Iterable[T], size: Size, start: int = 0) -> Iterator[list[T]]:
    """Batches of `size` items (spaCy's `minibatch`)."""
    size_ = _sizes(size, start)
    items = iter(docs)
    for index in itertools.count(start):
        batch = list(itertools.islice(items, int(next(size_))))
        if not batch:
            return
        yield _sized(batch, index)


@batchers("distnlp.batch_by_words.v1")
def configure_batch_by_words(
    size: float | Schedule = 1000,
    tolerance: float = 0.2,
    discard_oversize: bool = False,
    get_length: Callable[[Any], int] | None = None,
) -> Batcher:
    return partial(batch_by_words, size=size, tolerance=tolerance, discard_oversize=discard_oversize,
                   get_length=get_length or len)


@batchers("distnlp.batch_by_padded.v1")
def configure_batch_by_padded(
    size: float | Schedule = 2000,
    buffer: int = 256,
    discard_oversize: bool = False,
    get_length: Callable[[Any], int] | None = None,
) -> Batcher:
    return partial(batch_by_padded, size=size, buffer=buffer, discard_oversize=discard_oversize,
                   get_length=get_length or len)


@batchers("distnlp.batch_by_sequence.v1")
def configure_batch_by_sequence(size: float | Schedule = 32) -> Batcher:
    return partial(batch_by_sequence, size=size)
