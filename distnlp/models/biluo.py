"""BILUO / IOB2 tag schemes for entity spans, and constrained Viterbi decoding over BILUO tags.

Spans are `(start, end, label)` token offsets with `end` exclusive (as `Doc.ent_spans`).
The tag inventory is built by `biluo_labels` in a fixed order, so tag ids are stable across
processes and saved models.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from numba import njit
from torch import Tensor

__all__ = [
    "Spans",
    "allowed_transitions",
    "biluo_labels",
    "biluo_tags_from_spans",
    "biluo_to_iob2",
    "iob2_tags_from_spans",
    "spans_from_biluo_tags",
    "spans_from_iob2_tags",
    "viterbi_decode",
]

Spans = list[tuple[int, int, str]]
BILUO_PREFIXES = ("B", "I", "L", "U")


def biluo_labels(entity_labels: Iterable[str]) -> list[str]:
    """["O", B-X, I-X, L-X, U-X for X in sorted labels]: deterministic whatever the input order."""
    out = ["O"]
    for label in sorted(set(entity_labels)):
        out.extend(f"{p}-{label}" for p in BILUO_PREFIXES)
    return out


def _check_spans(n_tokens: int, spans: Iterable[tuple[int, int, str]]) -> Spans:
    ordered = sorted((int(s), int(e), str(lab)) for s, e, lab in spans)
    prev_end = 0
    for s, e, lab in ordered:
        if not 0 <= s < e <= n_tokens:
            raise ValueError(f"entity span ({s}, {e}, {lab!r}) is outside a doc of {n_tokens} tokens or empty")
        if s < prev_end:
            raise ValueError(f"entity span ({s}, {e}, {lab!r}) overlaps the previous one (BILUO needs disjoint spans)")
        prev_end = e
    return ordered


def biluo_tags_from_spans(n_tokens: int, spans: Iterable[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * n_tokens
    for s, e, lab in _check_spans(n_tokens, spans):
        if e - s == 1:
            tags[s] = f"U-{lab}"
        else:
            tags[s] = f"B-{lab}"
            for i in range(s + 1, e - 1):
                tags[i] = f"I-{lab}"
            tags[e - 1] = f"L-{lab}"
    return tags


def iob2_tags_from_spans(n_tokens: int, spans: Iterable[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * n_tokens
    for s, e, lab in _check_spans(n_tokens, spans):
        tags[s] = f"B-{lab}"
        for i in range(s + 1, e):
            tags[i] = f"I-{lab}"
    return tags


def _split(tag: str | None) -> tuple[str, str]:
    if not tag or tag == "-" or tag.startswith("-"):
        return "-", ""  # missing / misaligned (spaCy's "-"): treated as outside
    if tag == "O":
        return "O", ""
    prefix, _, label = tag.partition("-")
    return prefix, label


def spans_from_biluo_tags(tags: Sequence[str | None], strict: bool = False) -> Spans:
    """Entity spans from BILUO tags.

    Well-formed input gives exact spans. Malformed input is repaired the forgiving way (spaCy's
    `biluo_tags_to_spans` raises instead; pass strict=True for that): an I/L with no open entity
    or with another label starts a new entity, a B or U or O closes an open entity at the
    previous token, and an entity still open at the end is closed there. "-"/None = missing.
    """
    spans: Spans = []
    start: int | None = None
    label = ""

    def close(end: int) -> None:
        nonlocal start
        if start is not None:
            spans.append((start, end, label))
        start = None

    for i, tag in enumerate(tags):
        prefix, lab = _split(tag)
        if prefix not in ("-", "O", *BILUO_PREFIXES):
            raise ValueError(f"invalid BILUO tag {tag!r} at token {i}")
        opens_here = start is not None and lab == label
        if strict and prefix in ("I", "L") and not opens_here:
            raise ValueError(f"BILUO tag {tag!r} at token {i} has no open entity: {list(tags)[: i + 1]}")
        if strict and prefix in ("B", "U", "O") and start is not None:
            raise ValueError(f"BILUO tag {tag!r} at token {i} interrupts an open entity: {list(tags)[: i + 1]}")
        if prefix in ("-", "O"):
            close(i)
        elif prefix == "U":
            close(i)
            spans.append((i, i + 1, lab))
        elif prefix == "B":
            close(i)
            start, label = i, lab
        else:  # I or L
            if not opens_here:
                close(i)
                start, label = i, lab
            if prefix == "L":
                close(i + 1)
    if strict and start is not None:
        raise ValueError(f"BILUO tags end inside an entity: {list(tags)}")
    close(len(tags))
    return spans


def spans_from_iob2_tags(tags: Sequence[str | None]) -> Spans:
    """Spans from IOB2 (an I without a matching open entity starts one, as conlleval does)."""
    spans: Spans = []
    start: int | None = None
    label = ""
    for i, tag in enumerate(tags):
        prefix, lab = _split(tag)
        if prefix == "I" and start is not None and lab == label:
            continue
        if start is not None:
            spans.append((start, i, label))
            start = None
        if prefix in ("B", "I"):
            start, label = i, lab
    if start is not None:
        spans.append((start, len(tags), label))
    return spans


def biluo_to_iob2(tags: Sequence[str]) -> list[str]:
    return iob2_tags_from_spans(len(tags), spans_from_biluo_tags(tags))


def allowed_transitions(labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Boolean masks over a BILUO inventory: (start[L], trans[prev, next], end[L]).

    A sequence is well formed iff it starts outside an entity (O, B, U), every step follows
    "inside -> I/L of the same label, outside -> O/B/U", and it ends outside (O, L, U).
    """
    parsed = [_split(t) for t in labels]
    n = len(labels)
    start = torch.zeros(n, dtype=torch.bool)
    end = torch.zeros(n, dtype=torch.bool)
    trans = torch.zeros(n, n, dtype=torch.bool)
    for j, (p, _) in enumerate(parsed):
        start[j] = p in ("O", "B", "U")
        end[j] = p in ("O", "L", "U")
    for i, (pi, li) in enumerate(parsed):
        inside = pi in ("B", "I")
        for j, (pj, lj) in enumerate(parsed):
            trans[i, j] = (pj in ("I", "L") and lj == li) if inside else pj in ("O", "B", "U")
    return start, trans, end


def viterbi_decode(
    scores: Tensor, lengths: Sequence[int], masks: tuple[Tensor, Tensor, Tensor]
) -> list[list[int]]:
    """Best allowed tag sequence per doc under additive per-token scores (e.g. log-probs).

    scores: [B, T, L], padded after each doc's length. All docs are decoded in one compiled call
    (numba): the recursion over time steps ran as a Python loop of small tensor ops, a step each
    per word of the longest doc."""
    B, T, L = scores.shape
    if B == 0 or T == 0:
        return [[] for _ in range(B)]
    start_ok, trans_ok, end_ok = (m.cpu().numpy() for m in masks)
    lens = np.asarray(list(lengths), dtype=np.int64)
    paths = _viterbi(scores.detach().float().cpu().numpy(), lens, start_ok, trans_ok, end_ok)
    return [row[: int(n)] for row, n in zip(paths.tolist(), lens)]


@njit(cache=True, nogil=True)
def _viterbi(scores, lens, start_ok, trans_ok, end_ok):  # pragma: no cover - compiled
    B, T, L = scores.shape
    out = np.zeros((B, T), dtype=np.int64)
    delta = np.empty(L)
    nxt = np.empty(L)
    back = np.zeros((T, L), dtype=np.int64)
    for b in range(B):
        n = lens[b]
        if n == 0:
            continue
        for j in range(L):
            delta[j] = scores[b, 0, j] if start_ok[j] else -np.inf
        for t in range(1, n):
            for j in range(L):
                best, arg = -np.inf, 0
                for i in range(L):  # the first best previous tag on ties, as torch's max
                    if trans_ok[i, j] and delta[i] > best:
                        best, arg = delta[i], i
                nxt[j] = best + scores[b, t, j]
                back[t, j] = arg
            delta[:] = nxt
        best, last = -np.inf, 0
        for j in range(L):
            if end_ok[j] and delta[j] > best:
                best, last = delta[j], j
        out[b, n - 1] = last
        for t in range(n - 1, 0, -1):
            last = back[t, last]
            out[b, t - 1] = last
    return out
