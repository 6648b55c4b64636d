"""Evaluation with spaCy's score names and semantics, mergeable across ranks.

    scorer = Scorer(["tag", "ents"]).update(golds, preds)      # on each rank
    merged = Scorer.merge(all_gathered_states)                 # [s.state() for each rank]
    scores = merged.scores(); main = combine_score(scores, weights)

Pure Python/numpy: no torch here.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .cats import score_cats
from .prf import roc_auc
from .scorer import ATTRS, Scorer
from .weights import combine_score, combine_score_weights

__all__ = ["ATTRS", "Scorer", "combine_score", "combine_score_weights", "roc_auc", "score", "score_cats"]


def score(golds: Iterable[Any], preds: Iterable[Any], attrs: Iterable[str] = ATTRS, **cats_options: Any) -> dict[str, Any]:
    """Score everything in one place (no merging)."""
    return Scorer(list(attrs), **cats_options).update(golds, preds).scores()
