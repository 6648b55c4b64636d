"""Poolers: wordpiece vectors -> one vector per (span, word) occurrence, vectorized.

Contract: `pooler(values, segments, n_segments) -> Tensor[n_segments, width]` where
- `values`   [n_items, width]: the wordpiece vectors, one row per (word occurrence, piece) pair;
- `segments` [n_items] int64: the occurrence each row belongs to, NON-DECREASING, and the rows of
  one occurrence are in wordpiece order (so "first" and "last" are well defined);
- a segment with no rows gets zeros.
No Python loop over words: index_add / scatter_reduce / index_copy only. All are differentiable.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..registry import poolers

__all__ = ["Pooler", "reduce_first", "reduce_last", "reduce_max", "reduce_mean", "reduce_sum"]

Pooler = Callable[[Tensor, Tensor, int], Tensor]


def _zeros(values: Tensor, n: int) -> Tensor:
    return values.new_zeros((n, values.shape[-1]))


def reduce_sum(values: Tensor, segments: Tensor, n: int) -> Tensor:
    return _zeros(values, n).index_add(0, segments, values)


def reduce_mean(values: Tensor, segments: Tensor, n: int) -> Tensor:
    counts = torch.bincount(segments, minlength=n).clamp(min=1).to(values.dtype)
    return reduce_sum(values, segments, n) / counts.unsqueeze(-1)


def reduce_max(values: Tensor, segments: Tensor, n: int) -> Tensor:
    index = segments.unsqueeze(-1).expand_as(values)
    # include_self=False: an occurrence's max is over its own rows only; empty ones stay 0
    return _zeros(values, n).scatter_reduce(0, index, values, reduce="amax", include_self=False)


def _boundary(segments: Tensor, first: bool) -> Tensor:
    """Row index of the first (or last) row of every non-empty segment."""
    if segments.numel() == 0:
        return segments
    change = segments[1:] != segments[:-1]
    if first:
        mask = torch.cat([change.new_ones(1), change])
    else:
        mask = torch.cat([change, change.new_ones(1)])
    return mask.nonzero().squeeze(-1)


def reduce_first(values: Tensor, segments: Tensor, n: int) -> Tensor:
    rows = _boundary(segments, first=True)
    return _zeros(values, n).index_copy(0, segments[rows], values[rows])


def reduce_last(values: Tensor, segments: Tensor, n: int) -> Tensor:
    rows = _boundary(segments, first=False)
    return _zeros(values, n).index_copy(0, segments[rows], values[rows])


@poolers("distnlp.reduce_mean.v1")
def configure_reduce_mean() -> Pooler:
    return reduce_mean


@poolers("distnlp.reduce_max.v1")
def configure_reduce_max() -> Pooler:
    return reduce_max


@poolers("distnlp.reduce_first.v1")
def configure_reduce_first() -> Pooler:
    return reduce_first


@poolers("distnlp.reduce_last.v1")
def configure_reduce_last() -> Pooler:
    return reduce_last


@poolers("distnlp.reduce_sum.v1")
def configure_reduce_sum() -> Pooler:
    return reduce_sum
