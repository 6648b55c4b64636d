"""Maximum spanning tree decoding for the graph-based parser (pure numpy).

`decode_tree(scores)` returns the highest-scoring dependency tree of one sentence: every word has
exactly one head, exactly one word attaches to ROOT, no cycles; non-projective trees included.

Exactness of the one-root constraint: every edge out of ROOT is lowered by the same penalty M
larger than the score range of any tree, so a tree with k root edges pays kM. Every spanning
arborescence has at least one root edge, hence the maximum has exactly one, and among the
one-root trees (all paying M once) it is the best: the unconstrained Chu-Liu/Edmonds maximum of
the penalised matrix is the constrained maximum of the original one.

Chu-Liu/Edmonds is iterative (no recursion limit on long sentences): greedy heads, contract every
cycle into a node at once, repeat; then expand the contractions in reverse. Each level is
vectorised numpy over the [m, m] matrix (grouped maxima by `reduceat`), so a sentence costs
O(n^2) per level and no Python runs per word.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["decode_tree", "is_tree"]

NEG = -np.inf


def decode_tree(scores: np.ndarray) -> np.ndarray:
    """Best one-root tree. `scores[d, h]`: score of head h for dependent d, over nodes 0..n with
    node 0 = ROOT (row 0 and the diagonal are ignored). Returns heads [n + 1] with heads[0] = -1
    and heads[d] in 0..n for every word d >= 1."""
    S = np.array(scores, dtype=np.float64)  # a copy: the caller's matrix is left alone
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] < 2:
        raise ValueError(f"expected a square [n + 1, n + 1] matrix with n >= 1, got {S.shape}")
    m = S.shape[0]
    S[0, :] = NEG
    np.fill_diagonal(S, NEG)
    heads = _greedy(S)
    if _root_children(heads) == 1 and not _cycle_nodes(heads).size:
        return heads  # the unconstrained argmax is already a valid tree: it is the optimum
    heads = _chu_liu_edmonds(S.copy())
    if _root_children(heads) == 1:
        return heads  # the best tree overall has one root: the best one-root tree too
    # Several roots: the penalised search below merges every word before ROOT is taken, so it
    # needs more levels; it runs only for these sentences.
    finite = S[np.isfinite(S)]
    # The penalty must exceed the spread of any tree's total (n edges), see the module docstring.
    penalty = (m - 1) * float(finite.max() - finite.min()) + 1.0
    S[1:, 0] -= penalty
    return _chu_liu_edmonds(S)


def is_tree(heads: np.ndarray) -> bool:
    """Whether heads[1:] (heads[0] = ROOT, ignored) form one tree with exactly one root child."""
    heads = np.asarray(heads)
    if heads.size < 2 or np.any(heads[1:] < 0) or np.any(heads[1:] >= heads.size):
        return False
    if np.any(heads[1:] == np.arange(1, heads.size)):
        return False
    return _root_children(heads) == 1 and not _cycle_nodes(heads).size


def _greedy(S: np.ndarray) -> np.ndarray:
    heads = np.empty(S.shape[0], dtype=np.int64)
    heads[0] = -1
    heads[1:] = S[1:].argmax(axis=1)  # ties: the first head, so decoding is deterministic
    return heads


def _root_children(heads: np.ndarray) -> int:
    return int((heads[1:] == 0).sum())


def _cycle_nodes(heads: np.ndarray) -> np.ndarray:
    """Nodes lying on a cycle of the head function (ROOT excluded), by pointer doubling."""
    f = heads.copy()
    f[0] = 0  # ROOT is a fixed point: nodes that reach it end there
    steps = 1
    while steps < f.size:
        f = f[f]
        steps *= 2
    # after >= m steps every node sits on the cycle (or ROOT) it eventually enters
    on = np.zeros(f.size, dtype=bool)
    on[f] = True
    on[0] = False
    return np.flatnonzero(on)


def _cycles(heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes on a cycle of the head function, per node the smallest node of its cycle or the
    node itself off cycles), by one pointer doubling with a running minimum along the path."""
    f = heads.copy()
    f[0] = 0  # ROOT is a fixed point: nodes that reach it end there
    rep = np.arange(f.size)
    steps = 1
    while steps < f.size:  # after >= m steps every node sits on the cycle (or ROOT) it enters
        rep = np.minimum(rep, rep[f])  # min over the next 2 * steps nodes of the path
        f = f[f]
        steps *= 2
    on = np.zeros(f.size, dtype=bool)
    on[f] = True
    on[0] = False
    return np.flatnonzero(on), np.where(on, rep, np.arange(f.size))


def _group_order(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes sorted by group (ids 0..g-1, all used) and where each group starts, for reduceat."""
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group)
    return order, np.cumsum(counts) - counts


@dataclass
class _Level:
    group: np.ndarray  # per node of this level: its node in the contracted level
    heads: np.ndarray  # this level's greedy heads (the cycle edges among them are kept)
    gain: np.ndarray  # scores with each cycle node's own cycle edge subtracted


def _chu_liu_edmonds(S: np.ndarray) -> np.ndarray:
    """Every cycle of the greedy heads is contracted at once; a contracted node's score from
    head h is the best gain of entering its cycle from h (the cycle edge it replaces removed)."""
    levels: list[_Level] = []
    while True:
        heads = _greedy(S)
        on_cycle, key = _cycles(heads)  # ROOT keeps key 0, so it stays node 0
        if not on_cycle.size:
            break
        is_key = np.zeros(key.size, dtype=bool)
        is_key[key] = True
        group = (np.cumsum(is_key) - 1)[key]  # keys renumbered 0.. in order
        gain = S.copy()
        gain[on_cycle] -= S[on_cycle, heads[on_cycle]][:, None]
        order, bounds = _group_order(group)
        new = np.maximum.reduceat(np.maximum.reduceat(gain[order], bounds, axis=0)[:, order], bounds, axis=1)
        np.fill_diagonal(new, NEG)
        new[0, :] = NEG
        levels.append(_Level(group, heads, gain))
        S = new
    for level in reversed(levels):
        group, gain = level.group, level.gain
        target = heads[group]  # the contracted head of each node's group
        target[0] = -1
        allowed = np.where(group[None, :] == target[:, None], gain, NEG)
        best_h = allowed.argmax(axis=1)
        best_v = allowed[np.arange(group.size), best_h]
        best_v[0] = NEG
        # per group, the (first) node through which the best edge enters it
        order, bounds = _group_order(group)
        top = np.maximum.reduceat(best_v[order], bounds)
        nodes = np.arange(group.size)
        entering = np.minimum.reduceat(np.where(best_v == top[group], nodes, group.size)[order], bounds)[1:]
        expanded = level.heads.copy()
        expanded[entering] = best_h[entering]
        heads = expanded
    return heads
