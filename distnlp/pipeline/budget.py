"""Inference batches by a padded-size budget: docs of similar length together, order kept by the caller.

A batch costs what its longest doc times its doc count costs (every doc is padded to the longest),
so `Pipeline.pipe` sorts a window of docs by length and cuts it where that padded size would pass
the budget. A doc longer than the budget is a batch of its own, never cut: the CNN has no length
limit and a transformer encoder windows long docs itself (docs/architecture.md, decision 5).
"""
from __future__ import annotations

from collections.abc import Sequence


def budgeted_batches(lengths: Sequence[int], max_words: int, max_docs: int) -> list[list[int]]:
    """Indices into `lengths`, grouped into batches in ascending length order (ties keep input
    order): each batch has at most `max_docs` docs and longest * count <= `max_words`."""
    if max_words < 1 or max_docs < 1:
        raise ValueError(f"max_words ({max_words}) and max_docs ({max_docs}) must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])  # stable: ties in input order
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending: the newcomer is the longest of the batch
        if batch and (len(batch) + 1 > max_docs or longest * (len(batch) + 1) > max_words):
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches
