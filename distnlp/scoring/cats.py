"""spaCy's Scorer.score_cats over gathered (gold cats, predicted cats) pairs.

The pairs are kept rather than counts because spaCy scores a label that is absent from a
doc's gold dict as 0.0 (only an explicit None is "missing"), so every count depends on the
full label set; AUC needs every score anyway, so keeping pairs costs the same and merging
ranks is plain concatenation.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .prf import Counts, f_score, is_binary, precision, prf_dict, recall, roc_auc

__all__ = ["score_cats"]

CatsPair = tuple[Mapping[str, Any], Mapping[str, Any]]


def score_cats(
    pairs: Sequence[CatsPair],
    labels: Sequence[str] | None = None,
    *,
    exclusive: bool = True,
    positive_label: str | None = None,
    threshold: float | None = None,
    multilabel_score: str = "auc",
) -> dict[str, Any]:
    """Scores named like spaCy's (cats_score, cats_micro_p...). `labels`: the component's
    inventory (keys outside it are ignored); None = every key seen in the pairs.
    `multilabel_score`: "auc" (spaCy: macro AUC is cats_score for multilabel) or "f"."""
    if threshold is None:
        threshold = 0.0 if exclusive else 0.5
    if labels is None:
        labels = sorted({k for g, p in pairs for k in (*g.keys(), *p.keys())})
    labels = list(labels)
    known = set(labels)
    f_per_type: dict[str, Counts] = {lab: [0, 0, 0] for lab in labels}
    auc_golds: dict[str, list[float]] = {lab: [] for lab in labels}
    auc_scores: dict[str, list[float]] = {lab: [] for lab in labels}
    for gold_raw, pred_raw in pairs:
        gold = {k: v for k, v in gold_raw.items() if k in known}
        pred = {k: float(v) for k, v in pred_raw.items() if k in known and v is not None}
        for lab in labels:
            g = gold.get(lab, 0.0)
            if g is not None:
                auc_golds[lab].append(float(g))
                auc_scores[lab].append(pred.get(lab, 0.0))
        gold_known = {k: float(v) for k, v in gold.items() if v is not None}
        if not exclusive:
            for lab in labels:
                g = gold.get(lab, 0.0)
                if g is None:
                    continue
                p = pred.get(lab, 0.0)
                if p >= threshold and g > 0:
                    f_per_type[lab][0] += 1
                elif p >= threshold and g == 0:
                    f_per_type[lab][1] += 1
                elif p < threshold and g > 0:
                    f_per_type[lab][2] += 1
        elif pred and gold_known:
            # first of the highest scores, as Python's max over dict items
            p_lab, p_score = max(pred.items(), key=lambda it: it[1])
            g_lab, _ = max(gold_known.items(), key=lambda it: it[1])
            if p_lab == g_lab and p_score >= threshold:
                f_per_type[p_lab][0] += 1
            else:
                f_per_type[g_lab][2] += 1
                if p_score >= threshold:
                    f_per_type[p_lab][1] += 1
        elif gold_known:
            g_lab, g_score = max(gold_known.items(), key=lambda it: it[1])
            if g_score > 0:
                f_per_type[g_lab][2] += 1
        elif pred:
            p_lab, p_score = max(pred.items(), key=lambda it: it[1])
            if p_score >= threshold:
                f_per_type[p_lab][1] += 1
    micro = [sum(c[i] for c in f_per_type.values()) for i in range(3)]
    n_cats = len(f_per_type) + 1e-100
    auc_per_type = {
        lab: roc_auc(auc_golds[lab], auc_scores[lab]) if is_binary(auc_golds[lab]) else None for lab in labels
    }
    macro_auc = sum(v for v in auc_per_type.values() if v is not None) / n_cats
    results: dict[str, Any] = {
        "cats_score": None,
        "cats_score_desc": None,
        "cats_micro_p": precision(micro),
        "cats_micro_r": recall(micro),
        "cats_micro_f": f_score(micro),
        "cats_macro_p": sum(precision(c) for c in f_per_type.values()) / n_cats,
        "cats_macro_r": sum(recall(c) for c in f_per_type.values()) / n_cats,
        "cats_macro_f": sum(f_score(c) for c in f_per_type.values()) / n_cats,
        "cats_macro_auc": macro_auc,
        "cats_f_per_type": {k: prf_dict(c) for k, c in f_per_type.items()},
        "cats_auc_per_type": auc_per_type,
    }
    if len(labels) == 2 and exclusive and positive_label:
        if positive_label not in f_per_type:
            raise ValueError(f"positive_label {positive_label!r} is not one of the labels {labels}")
        results["cats_score"] = results["cats_f_per_type"][positive_label]["f"]
        results["cats_score_desc"] = f"F ({positive_label})"
    elif exclusive or multilabel_score == "f":
        results["cats_score"] = results["cats_macro_f"]
        results["cats_score_desc"] = "macro F"
    else:
        results["cats_score"] = results["cats_macro_auc"]
        results["cats_score_desc"] = "macro AUC"
    return results
