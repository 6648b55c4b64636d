"""Dependency trees as lists of heads: the one check both the CoNLL-U reader and the scorer need."""
from __future__ import annotations

from collections.abc import Sequence


def find_cycle(parents: Sequence[int | None]) -> list[int] | None:
    """A cycle of `parents` (0-based index of each word's head; None: the root or a missing head),
    as the words on it from the lowest, or None. Each word is walked once: O(n)."""
    state = [0] * len(parents)  # 0 unseen, 1 on the current walk, 2 known to reach the root or a missing head
    for start in range(len(parents)):
        walk: list[int] = []
        j: int | None = start
        while j is not None and state[j] == 0:
            state[j] = 1
            walk.append(j)
            j = parents[j]
        if j is not None and state[j] == 1:
            cycle = walk[walk.index(j):]
            k = cycle.index(min(cycle))
            return cycle[k:] + cycle[:k]
        for w in walk:
            state[w] = 2
    return None
