"""The CoNLL 2018 shared task metrics (conll18_ud_eval.py) for gold tokenization.

With gold tokenization every predicted word is aligned to the gold word at the same position,
so a metric is F1 over words: 2 * correct / (gold words + system words), where CLAS, MLAS and
BLEX count only content words (a gold word for `gold`, a predicted one for `system`, by its
own relation). As in the official script:

- DEPREL is compared without its subtype (`nsubj:pass` is `nsubj`); content words are those
  whose relation is in CONTENT_DEPRELS (punct and the functional ones are not);
- UFeats compares the universal features only (UNIVERSAL_FEATURES), sorted; "_" is no feature;
- Lemmas and BLEX count a word whose gold lemma is "_" (or missing) as right;
- MLAS also needs UPOS, UFeats and the word's functional children (aux, cop, mark, det, clf,
  case, cc) with their relation, UPOS and UFeats to match.

A metric is reported only when the predictions carry every column it needs (a pipeline without
a parser has no UAS), and is counted only over the docs whose gold carries them too (a corpus
without trees has no UAS; scoring it against nothing gave 0.00, and Lemmas 100.00): otherwise
it is None (absent), never computed against missing values. Counts are [correct, gold, system]
per metric, so they add up over docs and ranks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METRICS", "Conll18", "count_conll18", "predicted_metrics", "scorable_metrics"]

UNIVERSAL_FEATURES = frozenset({
    "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy", "Number", "Case", "Definite",
    "Degree", "VerbForm", "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person", "Polite",
})
FUNCTIONAL_DEPRELS = frozenset({"aux", "cop", "mark", "det", "clf", "case", "cc"})
CONTENT_DEPRELS = frozenset({
    "nsubj", "obj", "iobj", "csubj", "ccomp", "xcomp", "obl", "vocative", "expl", "dislocated", "advcl", "advmod",
    "discourse", "nmod", "appos", "nummod", "acl", "amod", "conj", "fixed", "flat", "compound", "list", "parataxis",
    "orphan", "goeswith", "reparandum", "root", "dep",
})

# metric -> the Doc columns the prediction must carry for it to be scored
NEEDS: dict[str, tuple[str, ...]] = {
    "UPOS": ("pos",),
    "XPOS": ("tags",),
    "UFeats": ("morphs",),
    "AllTags": ("pos", "tags", "morphs"),
    "Lemmas": ("lemmas",),
    "UAS": ("heads",),
    "LAS": ("heads", "deps"),
    "CLAS": ("heads", "deps"),
    "MLAS": ("heads", "deps", "pos", "morphs"),
    "BLEX": ("heads", "deps", "lemmas"),
}
METRICS = tuple(NEEDS)
_CONTENT_ONLY = frozenset({"CLAS", "MLAS", "BLEX"})


@dataclass
class _Word:
    upos: str
    xpos: str
    feats: str
    lemma: str
    head: int | None  # index in the doc; None for the root (and a missing head)
    deprel: str
    children: list[int] = field(default_factory=list)  # functional children, in word order

    @property
    def content(self) -> bool:
        return self.deprel in CONTENT_DEPRELS


def _value(col: Sequence[Any] | None, i: int) -> str:
    v = None if col is None else col[i]
    return "_" if v is None or v == "" else str(v)


def _ufeats(value: str) -> str:
    return "|".join(sorted(f for f in value.split("|") if f.split("=", 1)[0] in UNIVERSAL_FEATURES))


def _words(doc: Any) -> list[_Word]:
    words = []
    for i in range(len(doc.words)):
        h = None if doc.heads is None else doc.heads[i]
        words.append(_Word(
            upos=_value(doc.pos, i), xpos=_value(doc.tags, i), feats=_ufeats(_value(doc.morphs, i)),
            lemma=_value(doc.lemmas, i), head=None if h is None or int(h) == i else int(h),
            deprel=_value(doc.deps, i).split(":")[0],
        ))
    for i, w in enumerate(words):
        if w.head is not None and w.deprel in FUNCTIONAL_DEPRELS:
            words[w.head].children.append(i)
    return words


def _key(metric: str, words: list[_Word], i: int, gold_lemma: str) -> Any:
    w = words[i]
    lemma = "_" if gold_lemma == "_" else w.lemma
    if metric == "UPOS":
        return w.upos
    if metric == "XPOS":
        return w.xpos
    if metric == "UFeats":
        return w.feats
    if metric == "AllTags":
        return (w.upos, w.xpos, w.feats)
    if metric == "Lemmas":
        return lemma
    if metric == "UAS":
        return w.head
    if metric in ("LAS", "CLAS"):
        return (w.head, w.deprel)
    if metric == "MLAS":
        kids = [(c, words[c].deprel, words[c].upos, words[c].feats) for c in w.children]
        return (w.head, w.deprel, w.upos, w.feats, kids)
    return (w.head, w.deprel, lemma)  # BLEX


def predicted_metrics(pred: Any) -> list[str]:
    """The metrics whose columns this predicted Doc carries."""
    return [m for m, cols in NEEDS.items() if all(getattr(pred, c) is not None for c in cols)]


def scorable_metrics(gold: Any, pred: Any) -> list[str]:
    """The metrics whose columns both the gold and the predicted Doc carry."""
    return [m for m in predicted_metrics(pred) if all(getattr(gold, c) is not None for c in NEEDS[m])]


def count_conll18(gold: Any, pred: Any) -> dict[str, list[int]]:
    """[correct, gold words, system words] per metric this doc can be scored on."""
    if list(gold.words) != list(pred.words):
        raise ValueError(f"doc {gold.doc_id!r}: gold and predicted words differ (the CoNLL 2018 metrics here need gold tokenization)")
    g, p = _words(gold), _words(pred)
    out: dict[str, list[int]] = {}
    for metric in scorable_metrics(gold, pred):
        content = metric in _CONTENT_ONLY
        n_gold = sum(1 for w in g if w.content) if content else len(g)
        n_sys = sum(1 for w in p if w.content) if content else len(p)
        correct = sum(
            1 for i in range(len(g))
            if (not content or g[i].content) and _key(metric, g, i, g[i].lemma) == _key(metric, p, i, g[i].lemma)
        )
        out[metric] = [correct, n_gold, n_sys]
    return out


class Conll18:
    """Accumulates the counts over docs; `state()`/`merge()` add them up across ranks."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def update(self, golds: Sequence[Any], preds: Sequence[Any]) -> "Conll18":
        for gold, pred in zip(golds, preds, strict=True):
            for metric, c in count_conll18(gold, pred).items():
                self.counts[metric] = [a + b for a, b in zip(self.counts.get(metric, [0, 0, 0]), c)]
        return self

    def state(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in self.counts.items()}

    @classmethod
    def merge(cls, states: Sequence[Mapping[str, Sequence[int]]]) -> "Conll18":
        out = cls()
        for s in states:
            for metric, c in s.items():
                out.counts[metric] = [a + b for a, b in zip(out.counts.get(metric, [0, 0, 0]), c)]
        return out

    def scores(self) -> dict[str, float | None]:
        """F1 per metric as a fraction (the official script prints it x100); None = not predicted, or
        no gold for it."""
        out: dict[str, float | None] = {}
        for metric in METRICS:
            c = self.counts.get(metric)
            out[metric] = None if c is None else (2 * c[0] / (c[1] + c[2]) if c[1] + c[2] else 0.0)
        return out
