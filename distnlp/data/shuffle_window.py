"""Shuffling across row groups: docs are collected into windows of about `words` words and each
window is handed on in a seeded random order.

A `DocStream` shuffles the order of row groups and the rows within each, but reads one row group
at a time, so consecutive docs come from the same few hundred rows. A corpus stored in some
order (a CSV sorted by label, a treebank in document order) then gives batches of one label or
one genre, and a text classifier trained on banking77's label-sorted CSV stays at chance. A
window spanning many row groups restores near-global mixing at bounded memory.

Windows, not a reservoir: a doc waits at most one window, so the docs a checkpoint must list as
already handed out (`training/batches.py`) stay under one window's count, and a restart at a
checkpoint (the uninterrupted run restarts there too) refills the same window from the same
doc: the seed comes from where the window starts, so both runs draw the same order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from .doc import Doc


def shuffled_windows(docs: Iterable[Doc], words: int, seed: Sequence[int], epoch_of: Callable[[Doc], int] | None = None) -> Iterator[Doc]:
    """`docs` in windows of at least `words` words (the last may be smaller), each permuted by a
    generator seeded from `seed` and the window's number. With `epoch_of`, a window also ends
    where the epoch changes: epochs are never mixed (a small corpus is shuffled whole, epoch by
    epoch, instead of a window reading on through many epochs)."""
    window: list[Doc] = []
    size = 0
    number = 0
    epoch = None
    for doc in docs:
        if epoch_of is not None:
            doc_epoch = epoch_of(doc)
            if window and doc_epoch != epoch:
                yield from _permuted(window, [*seed, number])
                window, size, number = [], 0, number + 1
            epoch = doc_epoch
        window.append(doc)
        size += len(doc.words)
        if size >= words:
            yield from _permuted(window, [*seed, number])
            window, size, number = [], 0, number + 1
    yield from _permuted(window, [*seed, number])


def _permuted(window: list[Doc], seed: list[int]) -> Iterator[Doc]:
    order = np.random.default_rng([int(s) & 0xFFFFFFFF for s in seed]).permutation(len(window))
    return (window[i] for i in order.tolist())


__all__ = ["shuffled_windows"]
