"""Maximum spanning tree decoding for the graph-based parser (pure numpy).

`decode_tree(scores)` returns the highest-scoring dependency tree of one sentence: every word has
exactly one head, exactly one word attaches to ROOT, no cycles; non-projective trees included.

Exactness of the one-root constraint: every edge out of ROOT is lowered by the same penalty M
larger than the score range of any tree, so a tree with k root edges pays kM. Every spanning
arborescence has at least one root edge, hence the maximum has exactly one, and among the
one-root trees (all paying M once) it is the best: the unconstrained Chu-Liu/Edmonds maximum of
the penalised matrix is the constrained maximum of the original one.

Chu-Liu/Edmonds is iterative (no recursion limit on long sentences): greedy heads, contract one
cycle into a node, repeat; then expand the contractions in reverse. Each level is vectorised
numpy over the [m, m] matrix, so a sentence costs O(n^2) per contraction.
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
    on = np.unique(f)
    return on[on != 0]


def _one_cycle(heads: np.ndarray, start: int) -> np.ndarray:
    cycle = [start]
    node = int(heads[start])
    while node != start:  # walks only the cycle's own nodes
        cycle.append(node)
        node = int(heads[node])
    return np.array(cycle, dtype=np.int64)


@dataclass
class _Contraction:
    keep: np.ndarray  # old indices of the nodes kept (ROOT first), new index = position
    cycle: np.ndarray  # old indices of the contracted cycle (new node = len(keep))
    cycle_heads: np.ndarray  # their heads inside the cycle
    out_arg: np.ndarray  # per kept dependent: which cycle node is its head if it attaches to the cycle
    in_arg: np.ndarray  # per kept head: which cycle node it would enter through


def _chu_liu_edmonds(S: np.ndarray) -> np.ndarray:
    stack: list[_Contraction] = []
    while True:
        heads = _greedy(S)
        on_cycle = _cycle_nodes(heads)
        if not on_cycle.size:
            break
        cycle = _one_cycle(heads, int(on_cycle[0]))
        in_cycle = np.zeros(S.shape[0], dtype=bool)
        in_cycle[cycle] = True
        keep = np.flatnonzero(~in_cycle)
        c = keep.size
        # entering the cycle at d from head h replaces d's cycle edge: gain S[d, h] - S[d, head(d)]
        gain = S[cycle][:, keep] - S[cycle, heads[cycle]][:, None]
        out_scores = S[np.ix_(keep, cycle)]
        new = np.full((c + 1, c + 1), NEG)
        new[:c, :c] = S[np.ix_(keep, keep)]
        new[:c, c] = out_scores.max(axis=1)
        new[c, :c] = gain.max(axis=0)
        new[0, :] = NEG
        stack.append(_Contraction(keep, cycle, heads[cycle].copy(), cycle[out_scores.argmax(axis=1)], cycle[gain.argmax(axis=0)]))
        S = new
    for con in reversed(stack):
        c = con.keep.size
        size = c + con.cycle.size
        old = np.empty(size, dtype=np.int64)
        old[0] = -1
        h = heads[1:c]
        deps = con.keep[1:]
        old[deps] = np.where(h == c, con.out_arg[1:], con.keep[np.minimum(h, c - 1)])
        old[con.cycle] = con.cycle_heads
        enter_head = int(heads[c])  # the contracted node's head, a kept node
        old[con.in_arg[enter_head]] = con.keep[enter_head]
        heads = old
    return heads
