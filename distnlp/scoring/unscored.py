"""Which scores an evaluation could not compute, and why: the corpus has no gold annotation for
them. `distnlp evaluate` says so in one line instead of leaving the user to wonder why a score
is missing (the scorers give None, never a 0 computed against nothing)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .conll18 import NEEDS, predicted_metrics

# Doc column -> how the note names it
COLUMN_NAMES = {
    "tags": "tags", "pos": "POS", "morphs": "morphology", "lemmas": "lemmas", "heads": "heads", "deps": "dependency labels",
    "sent_starts": "sentence boundaries", "ent_spans": "entities", "cats": "categories",
}
_PREFIX_COLUMNS = {"ents_": ("ent_spans",), "sents_": ("sent_starts",), "cats_": ("cats",), "dep_": ("heads", "deps")}
_TOKEN_SCORES = {"tag_acc": ("tags",), "pos_acc": ("pos",), "morph_acc": ("morphs",), "lemma_acc": ("lemmas",)}
_DETAIL_SUFFIXES = ("_per_type", "_per_feat", "_desc")  # breakdowns of a headline score, not scores of their own


def score_columns(name: str) -> tuple[str, ...]:
    """The gold Doc columns a score needs (empty for a name that is not a known score)."""
    if name in _TOKEN_SCORES:
        return _TOKEN_SCORES[name]
    if name in NEEDS:
        return NEEDS[name]
    for prefix, columns in _PREFIX_COLUMNS.items():
        if name.startswith(prefix):
            return columns
    return ()


def unscored_note(scores: Mapping[str, Any], golds: Sequence[Any], preds: Sequence[Any], corpus: str) -> str | None:
    """One line naming the scores left uncomputed and the gold annotation the corpus lacks; None
    when every score the pipeline predicts was computed. CoNLL 2018 metrics whose columns the
    pipeline does not predict are left out silently (nothing was asked of the corpus)."""
    predicted = {m for p in preds for m in predicted_metrics(p)}
    names = [k for k, v in scores.items() if v is None and score_columns(k) and not k.endswith(_DETAIL_SUFFIXES)
             and (k not in NEEDS or k in predicted)]
    if not names:
        return None
    wanted = dict.fromkeys(c for n in names for c in score_columns(n))
    missing = [COLUMN_NAMES[c] for c in wanted if all(getattr(d, c, None) is None for d in golds)]
    why = f"{corpus} has no gold {_join(missing)}" if missing else f"no document of {corpus} has the gold annotation they need"
    return f"not scored ({why}): {', '.join(names)}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
