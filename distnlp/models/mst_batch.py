"""Tree decoding for a whole batch of sentences in one compiled call (numba).

`decode_batch(logp, lens)` returns, for every sentence of a padded [S, T, T + 1] score tensor, the
same tree as `mst.decode_tree` (the pure-numpy reference): the same algorithm (greedy heads, all
cycles contracted at once, expansion in reverse; the one-root constraint by a uniform penalty on
ROOT's edges, see mst.py), the same tie-breaking (the first maximum), in float64.

Why compiled: per sentence, the numpy decoder pays tens of small array calls, and on EWT that was
about 80% of the whole pipeline's inference time; here the loop over sentences and the search
itself run in machine code, and a sentence whose greedy heads already form a one-root tree (most
of them, with a trained parser) costs one pass over its scores. The cost of one sentence is
O(n^2) per contraction level; the pipeline bounds n (`max_sentence_length`), so it is bounded too.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["decode_batch"]


def decode_batch(logp: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Heads [S, T] (0 = ROOT, u = word u - 1 of the sentence; -1 on padding) for log-probabilities
    `logp[s, t, u]` of head u for word t (u = 0 is ROOT; impossible heads at -inf)."""
    logp = np.ascontiguousarray(logp, dtype=np.float64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    if logp.ndim != 3 or logp.shape[2] != logp.shape[1] + 1 or lens.shape != (logp.shape[0],):
        raise ValueError(f"expected logp [S, T, T + 1] and lens [S], got {logp.shape} and {lens.shape}")
    if lens.size and (lens.min() < 1 or lens.max() > logp.shape[1]):
        raise ValueError("every sentence length must be in 1..T")
    return _decode_batch(logp, lens)


@njit(cache=True, nogil=True)
def _decode_batch(logp, lens):  # pragma: no cover - compiled; tested through decode_batch
    S, T = logp.shape[0], logp.shape[1]
    out = np.full((S, T), -1, dtype=np.int64)
    for s in range(S):
        n = lens[s]
        m = n + 1
        W = np.full((m, m), -np.inf)
        for d in range(1, m):
            for h in range(m):
                if h != d:
                    W[d, h] = logp[s, d - 1, h]
        heads = _decode_one(W)
        for d in range(1, m):
            out[s, d - 1] = heads[d]
    return out


@njit(cache=True, nogil=True)
def _decode_one(W):  # pragma: no cover
    m = W.shape[0]
    heads = _greedy(W)
    if _root_children(heads) == 1 and not _has_cycle(heads):
        return heads  # the unconstrained argmax is already a one-root tree: the optimum
    heads = _chu_liu_edmonds(W.copy())
    if _root_children(heads) == 1:
        return heads
    lo, hi = np.inf, -np.inf
    for d in range(m):
        for h in range(m):
            v = W[d, h]
            if v != -np.inf and v != np.inf:
                lo = min(lo, v)
                hi = max(hi, v)
    penalty = (m - 1) * (hi - lo) + 1.0  # exceeds the spread of any tree's total (mst.py)
    P = W.copy()
    for d in range(1, m):
        P[d, 0] -= penalty
    return _chu_liu_edmonds(P)


@njit(cache=True, nogil=True)
def _greedy(W):  # pragma: no cover
    m = W.shape[0]
    heads = np.empty(m, dtype=np.int64)
    heads[0] = -1
    for d in range(1, m):
        best, arg = W[d, 0], 0
        for h in range(1, m):
            if W[d, h] > best:  # strict: ties keep the first head, as numpy's argmax
                best, arg = W[d, h], h
        heads[d] = arg
    return heads


@njit(cache=True, nogil=True)
def _root_children(heads):  # pragma: no cover
    k = 0
    for d in range(1, heads.shape[0]):
        if heads[d] == 0:
            k += 1
    return k


@njit(cache=True, nogil=True)
def _cycle_keys(heads):  # pragma: no cover
    """Per node: the smallest node of the cycle it lies on, or -1 off cycles (ROOT never)."""
    m = heads.shape[0]
    key = np.full(m, -1, dtype=np.int64)
    stamp = np.full(m, -1, dtype=np.int64)
    stamp[0] = m  # ROOT ends every path
    for v in range(1, m):
        u = v
        while stamp[u] == -1:
            stamp[u] = v
            u = heads[u]
        if stamp[u] == v:  # this walk came back to itself: u lies on a new cycle
            smallest, w = u, heads[u]
            while w != u:
                smallest = min(smallest, w)
                w = heads[w]
            key[u] = smallest
            w = heads[u]
            while w != u:
                key[w] = smallest
                w = heads[w]
    return key


@njit(cache=True, nogil=True)
def _has_cycle(heads):  # pragma: no cover
    key = _cycle_keys(heads)
    for v in range(key.shape[0]):
        if key[v] >= 0:
            return True
    return False


@njit(cache=True, nogil=True)
def _chu_liu_edmonds(W):  # pragma: no cover
    """mst._chu_liu_edmonds in loops: contract every cycle of the greedy heads at once (a group's
    score from h is the best gain of entering its cycle from h), repeat, then expand in reverse."""
    groups, level_heads, gains = [], [], []
    S = W
    while True:
        m = S.shape[0]
        heads = _greedy(S)
        key = _cycle_keys(heads)
        on_cycle = False
        for v in range(m):
            if key[v] >= 0:
                on_cycle = True
                break
        if not on_cycle:
            break
        # a node's group: its cycle's smallest node, or itself; renumbered 0.. in node order
        rep = np.empty(m, dtype=np.int64)
        for v in range(m):
            rep[v] = key[v] if key[v] >= 0 else v
        new_id = np.full(m, -1, dtype=np.int64)
        g = 0
        for v in range(m):
            if rep[v] == v:
                new_id[v] = g
                g += 1
        group = np.empty(m, dtype=np.int64)
        for v in range(m):
            group[v] = new_id[rep[v]]
        gain = S.copy()
        for d in range(1, m):
            if key[d] >= 0:
                own = S[d, heads[d]]
                for h in range(m):
                    gain[d, h] -= own
        new = np.full((g, g), -np.inf)
        for d in range(m):
            gd = group[d]
            if gd == 0:
                continue  # row 0 (ROOT's group) stays -inf
            for h in range(m):
                gh = group[h]
                if gh != gd and gain[d, h] > new[gd, gh]:
                    new[gd, gh] = gain[d, h]
        groups.append(group)
        level_heads.append(heads)
        gains.append(gain)
        S = new
    for k in range(len(groups) - 1, -1, -1):
        group, gain, lh = groups[k], gains[k], level_heads[k]
        m = group.shape[0]
        g = heads.shape[0]
        best_h = np.full(m, -1, dtype=np.int64)
        best_v = np.full(m, -np.inf)
        for d in range(1, m):
            target = heads[group[d]]
            if target < 0:
                continue  # d lies in ROOT's group
            for h in range(m):
                if group[h] == target and gain[d, h] > best_v[d]:
                    best_v[d], best_h[d] = gain[d, h], h
        top = np.full(g, -np.inf)
        for d in range(1, m):
            if best_v[d] > top[group[d]]:
                top[group[d]] = best_v[d]
        entering = np.full(g, -1, dtype=np.int64)
        for d in range(1, m):
            gd = group[d]
            if entering[gd] < 0 and best_v[d] == top[gd] and best_h[d] >= 0:
                entering[gd] = d
        expanded = lh.copy()
        for gd in range(1, g):
            d = entering[gd]
            if d >= 0:
                expanded[d] = best_h[d]
        heads = expanded
    return heads
