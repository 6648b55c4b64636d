"""The main "score": spaCy's score-weight semantics.

Weights of None are shown in the table but never weighted. The weights that count are those
with a number whose score exists (is not None), normalized to sum to 1, so a dev set without,
say, entity annotation does not drag the score towards 0.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["combine_score", "combine_score_weights"]


def combine_score_weights(
    weights: Iterable[Mapping[str, float | None]], overrides: Mapping[str, float | None] | None = None
) -> dict[str, float | None]:
    """spaCy's util.combine_score_weights: merge components' default weights, apply the
    config's overrides, normalize to sum 1 and round to 2 decimals (for the table)."""
    result: dict[str, float | None] = {k: v for w in weights for k, v in w.items()}
    result.update(overrides or {})
    total = sum(v for v in result.values() if v)
    return {k: (round(v / total, 2) if v and total > 0 else v) for k, v in result.items()}


def combine_score(scores: Mapping[str, Any], weights: Mapping[str, float | None]) -> float:
    """Weighted sum of `scores` with the weights renormalized over the scores present."""
    missing = [k for k in weights if k not in scores]
    if missing:
        raise ValueError(
            f"score weights name unknown scores {missing} (available: {', '.join(sorted(scores))}); "
            "fix the names in training.score_weights or set them to null"
        )
    active: dict[str, float] = {}
    for k, w in weights.items():
        if w is None or scores[k] is None:
            continue
        v = scores[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"score {k!r} is a {type(v).__name__}, not a number, so it cannot be weighted (set its weight to null)")
        if w < 0:
            raise ValueError(f"score weight {k!r} is negative ({w})")
        active[k] = float(w)
    total = sum(active.values())
    if total <= 0:
        return 0.0
    return sum(float(scores[k]) * w for k, w in active.items()) / total
