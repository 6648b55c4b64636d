"""Per-doc counting for token attributes, morph features, sentences and entities.

Each function compares one gold Doc with one predicted Doc over the same words and returns
plain counts ([tp, fp, fn]), so counts from many docs or many ranks simply add up. The rules
follow spaCy's Scorer: a gold value None (or "" for tags/pos/lemmas) is missing and not
scored; whitespace tokens are never predicted (spaCy skips them), so a labelled whitespace
token counts as a miss; an unannotated prediction counts as wrong. Entities overlapping a gold
`ents_missing` range are not scored at all (docs/architecture.md, decision 7).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .prf import Counts

__all__ = [
    "count_deps",
    "count_ents",
    "count_morph_per_feat",
    "count_sents",
    "count_token_attr",
    "normalize_morph",
    "sentence_spans",
]


def normalize_morph(value: str | None) -> str | None:
    """Canonical feature string: features sorted; "" and "_" are both the empty analysis."""
    if value is None:
        return None
    if value in ("", "_"):
        return "_"
    return "|".join(sorted(value.split("|")))


def count_token_attr(words: Sequence[str], gold: Sequence[Any] | None, pred: Sequence[Any] | None, morph: bool = False) -> Counts:
    """spaCy's score_token_attr for one doc: set F over (token, value) pairs, which is accuracy
    when no whitespace tokens are labelled."""
    if gold is None:
        return [0, 0, 0]
    tp = fp = fn = 0
    for i, g in enumerate(gold):
        if morph:
            g = normalize_morph(g)
        if g is None or g == "":
            continue
        if words[i].isspace():
            fn += 1
            continue
        p = None if pred is None else pred[i]
        if morph:
            p = normalize_morph(p)
        if p == g:
            tp += 1
        else:
            fp += 1
            fn += 1
    return [tp, fp, fn]


def _feats(value: str | None) -> dict[str, str]:
    """field -> "Field=Value" for a non-empty analysis (spaCy scores each feature as a whole)."""
    v = normalize_morph(value)
    if v is None or v == "_":
        return {}
    out = {}
    for feat in v.split("|"):
        out[feat.partition("=")[0]] = feat
    return out


def count_morph_per_feat(words: Sequence[str], gold: Sequence[str | None] | None, pred: Sequence[str | None] | None) -> dict[str, Counts]:
    """spaCy's score_token_attr_per_feat for one doc. As in spaCy, a gold token with an empty
    analysis counts as missing here (it has no features to score)."""
    if gold is None:
        return {}
    gold_sets: dict[str, set[tuple[int, str]]] = {}
    pred_sets: dict[str, set[tuple[int, str]]] = {}
    for i, g in enumerate(gold):
        gf = _feats(g)
        if not gf:
            continue
        for field, feat in gf.items():
            gold_sets.setdefault(field, set()).add((i, feat))
        if words[i].isspace() or pred is None:
            continue
        for field, feat in _feats(pred[i]).items():
            pred_sets.setdefault(field, set()).add((i, feat))
    out: dict[str, Counts] = {}
    for field in gold_sets.keys() | pred_sets.keys():
        g, p = gold_sets.get(field, set()), pred_sets.get(field, set())
        out[field] = [len(p & g), len(p - g), len(g - p)]
    return out


def sentence_spans(sent_starts: Sequence[Any], n_tokens: int) -> set[tuple[int, int]]:
    """(start, end) of every sentence, as Doc.sents: token 0 always starts one."""
    starts = [0] + [i for i in range(1, n_tokens) if sent_starts[i]] if n_tokens else []
    return {(s, e) for s, e in zip(starts, starts[1:] + [n_tokens])}


def count_sents(n_tokens: int, gold: Sequence[Any] | None, pred: Sequence[Any] | None) -> Counts:
    """spaCy's score_spans on doc.sents with has_annotation: docs without gold sentences are
    skipped; a prediction without sentence boundaries predicts no sentences."""
    if gold is None:
        return [0, 0, 0]
    g = sentence_spans(gold, n_tokens)
    p = sentence_spans(pred, n_tokens) if pred is not None else set()
    unknown = [i for i in range(1, n_tokens) if gold[i] is None]
    if unknown:  # a sentence with a boundary-unknown token inside or at its edges is not scored
        known = lambda se: not any(se[0] <= i <= se[1] for i in unknown)  # noqa: E731
        g, p = {x for x in g if known(x)}, {x for x in p if known(x)}
    return [len(p & g), len(p - g), len(g - p)]


def count_ents(
    gold: Sequence[tuple[int, int, str]] | None,
    pred: Sequence[tuple[int, int, str]] | None,
    missing: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Counts]:
    """spaCy's get_ner_prf for one doc: exact (label, start, end) match, counted per label.

    `missing`: token ranges whose gold entities are unknown; no entity, gold or predicted, that
    overlaps one is counted (neither a hit nor an error can be told there)."""
    if gold is None:
        return {}
    if missing:
        gold = [g for g in gold if not _overlaps(g, missing)]
        pred = [p for p in pred or () if not _overlaps(p, missing)]
    out: dict[str, Counts] = {}
    golds = {(str(lab), int(s), int(e)) for s, e, lab in gold}
    for s, e, lab in pred or ():
        key = (str(lab), int(s), int(e))
        c = out.setdefault(key[0], [0, 0, 0])
        if key in golds:
            c[0] += 1
            golds.remove(key)
        else:
            c[1] += 1
    for lab, _, _ in golds:
        out.setdefault(lab, [0, 0, 0])[2] += 1
    return out


PARSER_IGNORE_LABELS = ("p", "punct")  # spaCy's parser scores deps without punctuation


def count_deps(
    words: Sequence[str],
    gold_heads: Sequence[int | None] | None,
    gold_deps: Sequence[str | None] | None,
    pred_heads: Sequence[int | None] | None,
    pred_deps: Sequence[str | None] | None,
    ignore_labels: Sequence[str] = PARSER_IGNORE_LABELS,
) -> tuple[Counts, Counts, dict[str, Counts]]:
    """spaCy's score_deps for one doc: set F over (token, head) (unlabelled) and (token, head,
    label) (labelled, also per label). Tokens whose gold label is in `ignore_labels` leave the
    gold set, predicted ones leave the predicted set; tokens with a missing gold head or label
    are not scored at all (spaCy keeps that set across docs, a bug; here it is per doc)."""
    if gold_heads is None or gold_deps is None:
        return [0, 0, 0], [0, 0, 0], {}
    ignore = set(ignore_labels)
    missing = {i for i, (h, d) in enumerate(zip(gold_heads, gold_deps)) if h is None or not d}
    gold = {(i, int(h), d) for i, (h, d) in enumerate(zip(gold_heads, gold_deps)) if i not in missing and d not in ignore}
    pred: set[tuple[int, int, str]] = set()
    if pred_heads is not None and pred_deps is not None:
        for i, (h, d) in enumerate(zip(pred_heads, pred_deps)):
            if i in missing or words[i].isspace() or h is None or not d or d in ignore:
                continue
            pred.add((i, int(h), d))
    per_type: dict[str, Counts] = {}
    for d in {x[2] for x in gold | pred}:
        g, p = {x for x in gold if x[2] == d}, {x for x in pred if x[2] == d}
        per_type[d] = [len(p & g), len(p - g), len(g - p)]
    labelled = [len(pred & gold), len(pred - gold), len(gold - pred)]
    ug, up = {x[:2] for x in gold}, {x[:2] for x in pred}
    return [len(up & ug), len(up - ug), len(ug - up)], labelled, per_type


def _overlaps(span: tuple[int, int, str], ranges: Sequence[tuple[int, int]]) -> bool:
    s, e = int(span[0]), int(span[1])
    return any(a < e and s < b for a, b in ranges)
