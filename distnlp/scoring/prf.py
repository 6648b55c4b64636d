"""spaCy's PRFScore arithmetic (the 1e-100 guards included, so numbers match spaCy's) and a
numpy ROC AUC equal to the trapezoidal ROC area spaCy/sklearn compute."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Counts", "add_counts", "f_score", "precision", "prf_dict", "recall", "roc_auc"]

Counts = list[int]  # [tp, fp, fn]: plain list so states stay JSON/pickle-free and mergeable


def add_counts(a: Sequence[int], b: Sequence[int]) -> Counts:
    return [int(x) + int(y) for x, y in zip(a, b)]


def precision(c: Sequence[int]) -> float:
    return c[0] / (c[0] + c[1] + 1e-100)


def recall(c: Sequence[int]) -> float:
    return c[0] / (c[0] + c[2] + 1e-100)


def f_score(c: Sequence[int]) -> float:
    p, r = precision(c), recall(c)
    return 2 * ((p * r) / (p + r + 1e-100))


def prf_dict(c: Sequence[int]) -> dict[str, float]:
    return {"p": precision(c), "r": recall(c), "f": f_score(c)}


def is_binary(golds: Sequence[float]) -> bool:
    return len(np.unique(np.asarray(golds, dtype=float))) == 2


def roc_auc(golds: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the ROC curve with gold == 1.0 as the positive class (spaCy's pos_label).

    Computed as the Mann-Whitney statistic with average ranks for ties, which equals the
    trapezoidal area over the ROC curve's distinct thresholds. NaN without both classes.
    """
    y = np.asarray(golds, dtype=float) == 1.0
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=float)
    # average 1-based rank over each run of tied scores
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
