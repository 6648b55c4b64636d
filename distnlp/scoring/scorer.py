"""The evaluation accumulator: feed (gold, predicted) Doc pairs on any number of ranks, gather
each rank's `state()` (plain numbers, lists and dicts), `Scorer.merge(states).scores()`.

Every score is a sum of counts except cats, whose (gold, predicted) pairs are concatenated
(see cats.py), so the merged result equals scoring all docs in one place.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .cats import score_cats
from .counts import count_deps, count_ents, count_morph_per_feat, count_sents, count_token_attr
from .prf import Counts, add_counts, f_score, precision, prf_dict, recall

__all__ = ["ATTRS", "STATE_VERSION", "Scorer"]

ATTRS = ("tag", "pos", "morph", "lemma", "sents", "dep", "ents", "cats")
TOKEN_COLUMNS = {"tag": "tags", "pos": "pos", "morph": "morphs", "lemma": "lemmas"}
STATE_VERSION = 3  # 2: dependency counts; 3: components' own P/R/F counts


class Scorer:
    """Accumulates spaCy's scores. `attrs` picks the score groups reported (a pipeline
    reports only what its components predict, so unknown weight names are caught).

    Cats options follow spaCy's textcat scorers: `cats_exclusive` (textcat vs
    textcat_multilabel), `cats_labels` (the component's labels; None = every key seen),
    `cats_positive_label` (binary exclusive task), `cats_threshold` (None = 0.5 multilabel,
    0.0 exclusive), `cats_multilabel_score` ("auc" as spaCy, or "f").
    """

    def __init__(
        self,
        attrs: Sequence[str] = ATTRS,
        *,
        cats_labels: Sequence[str] | None = None,
        cats_exclusive: bool = True,
        cats_positive_label: str | None = None,
        cats_threshold: float | None = None,
        cats_multilabel_score: str = "auc",
        own: Sequence[str] = (),
        count_own: Sequence[Callable[[Any, Any], Mapping[str, Counts]]] = (),
    ) -> None:
        """`own`: names of components' own P/R/F scores (NAME_p, NAME_r, NAME_f); `count_own`:
        the functions that count them from a (gold, predicted) pair (`Component.score_counts`).
        The functions are not part of the state: a merged scorer only adds counts."""
        unknown = [a for a in attrs if a not in ATTRS]
        if unknown:
            raise ValueError(f"unknown score attributes {unknown}; choose from {list(ATTRS)}")
        if cats_multilabel_score not in ("auc", "f"):
            raise ValueError(f"cats_multilabel_score must be 'auc' or 'f', not {cats_multilabel_score!r}")
        self.config: dict[str, Any] = {
            "attrs": list(attrs),
            "cats_labels": None if cats_labels is None else list(cats_labels),
            "cats_exclusive": bool(cats_exclusive),
            "cats_positive_label": cats_positive_label,
            "cats_threshold": cats_threshold,
            "cats_multilabel_score": cats_multilabel_score,
            "own": list(own),
        }
        self.count_own = list(count_own)
        self.own: dict[str, Counts] = {}
        self.token: dict[str, Counts] = {a: [0, 0, 0] for a in TOKEN_COLUMNS}
        self.morph_per_feat: dict[str, Counts] = {}
        self.sents: Counts = [0, 0, 0]
        self.deps_uas: Counts = [0, 0, 0]
        self.deps_las: Counts = [0, 0, 0]
        self.deps_per_type: dict[str, Counts] = {}
        self.ents: dict[str, Counts] = {}
        self.cats: list[list[dict[str, Any]]] = []

    # --- accumulate ----------------------------------------------------------------------
    def update(self, golds: Iterable[Any], preds: Iterable[Any]) -> "Scorer":
        golds, preds = list(golds), list(preds)
        if len(golds) != len(preds):
            raise ValueError(f"{len(golds)} gold docs but {len(preds)} predicted docs")
        attrs = self.config["attrs"]
        for gold, pred in zip(golds, preds):
            if list(gold.words) != list(pred.words):
                raise ValueError(f"doc {gold.doc_id!r}: gold and predicted docs have different words")
            for attr, col in TOKEN_COLUMNS.items():
                if attr in attrs:
                    c = count_token_attr(gold.words, getattr(gold, col), getattr(pred, col), morph=attr == "morph")
                    self.token[attr] = add_counts(self.token[attr], c)
            if "morph" in attrs:
                _add_per_label(self.morph_per_feat, count_morph_per_feat(gold.words, gold.morphs, pred.morphs))
            if "sents" in attrs:
                self.sents = add_counts(self.sents, count_sents(len(gold.words), gold.sent_starts, pred.sent_starts))
            if "dep" in attrs:
                uas, las, per_type = count_deps(gold.words, gold.heads, gold.deps, pred.heads, pred.deps)
                self.deps_uas, self.deps_las = add_counts(self.deps_uas, uas), add_counts(self.deps_las, las)
                _add_per_label(self.deps_per_type, per_type)
            if "ents" in attrs:
                _add_per_label(self.ents, count_ents(gold.ent_spans, pred.ent_spans, getattr(gold, "ents_missing", None)))
            if "cats" in attrs and gold.cats is not None:
                self.cats.append([dict(gold.cats), dict(pred.cats or {})])
            for count in self.count_own:
                for name, c in count(gold, pred).items():
                    self.own[name] = add_counts(self.own.get(name, [0, 0, 0]), c)
        return self

    # --- distributed ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain data (ints, floats, str, None, lists, dicts) for gathering across ranks."""
        return {
            "version": STATE_VERSION,
            "config": dict(self.config),
            "token": {k: list(v) for k, v in self.token.items()},
            "morph_per_feat": {k: list(v) for k, v in self.morph_per_feat.items()},
            "sents": list(self.sents),
            "deps_uas": list(self.deps_uas),
            "deps_las": list(self.deps_las),
            "deps_per_type": {k: list(v) for k, v in self.deps_per_type.items()},
            "ents": {k: list(v) for k, v in self.ents.items()},
            "cats": [[dict(g), dict(p)] for g, p in self.cats],
            "own": {k: list(v) for k, v in self.own.items()},
        }

    @classmethod
    def merge(cls, states: Sequence[dict[str, Any]]) -> "Scorer":
        if not states:
            raise ValueError("Scorer.merge needs at least one state")
        config = states[0]["config"]
        for s in states:
            if s.get("version") != STATE_VERSION:
                raise ValueError(f"scorer state version {s.get('version')!r} is not {STATE_VERSION}")
            if s["config"] != config:
                raise ValueError(f"scorer states were made with different settings: {s['config']} vs {config}")
        kw = {k: v for k, v in config.items() if k != "attrs"}
        out = cls(config["attrs"], **kw)
        for s in states:
            for k, v in s["token"].items():
                out.token[k] = add_counts(out.token[k], v)
            _add_per_label(out.morph_per_feat, s["morph_per_feat"])
            out.sents = add_counts(out.sents, s["sents"])
            out.deps_uas = add_counts(out.deps_uas, s["deps_uas"])
            out.deps_las = add_counts(out.deps_las, s["deps_las"])
            _add_per_label(out.deps_per_type, s["deps_per_type"])
            _add_per_label(out.ents, s["ents"])
            out.cats.extend([dict(g), dict(p)] for g, p in s["cats"])
            _add_per_label(out.own, s["own"])
        return out

    # --- report --------------------------------------------------------------------------
    def scores(self) -> dict[str, Any]:
        """spaCy's names; fractions in [0, 1]; None where nothing was annotated."""
        attrs = self.config["attrs"]
        out: dict[str, Any] = {}
        for attr in TOKEN_COLUMNS:
            if attr in attrs:
                c = self.token[attr]
                out[f"{attr}_acc"] = f_score(c) if sum(c) else None
        if "morph" in attrs:
            out["morph_per_feat"] = (
                {k: prf_dict(v) for k, v in sorted(self.morph_per_feat.items())} if self.morph_per_feat else None
            )
        if "sents" in attrs:
            has = sum(self.sents) > 0
            out.update({f"sents_{k}": fn(self.sents) if has else None for k, fn in _PRF.items()})
        if "dep" in attrs:
            has = sum(self.deps_uas) > 0  # spaCy: None when nothing was scored
            out["dep_uas"] = f_score(self.deps_uas) if has else None
            out["dep_las"] = f_score(self.deps_las) if has else None
            out["dep_las_per_type"] = {k: prf_dict(v) for k, v in sorted(self.deps_per_type.items())} if has else None
        if "ents" in attrs:
            total = [sum(c[i] for c in self.ents.values()) for i in range(3)]
            has = sum(total) > 0
            out.update({f"ents_{k}": fn(total) if has else None for k, fn in _PRF.items()})
            out["ents_per_type"] = {k: prf_dict(v) for k, v in sorted(self.ents.items())} if has else None
        if "cats" in attrs:
            out.update(self._cats_scores())
        for name in self.config["own"]:
            c = self.own.get(name, [0, 0, 0])
            out.update({f"{name}_{k}": fn(c) if sum(c) else None for k, fn in _PRF.items()})
        return out

    def _cats_scores(self) -> dict[str, Any]:
        if not self.cats:
            return dict.fromkeys(_CATS_KEYS)
        cfg = self.config
        return score_cats(
            [(g, p) for g, p in self.cats],
            cfg["cats_labels"],
            exclusive=cfg["cats_exclusive"],
            positive_label=cfg["cats_positive_label"],
            threshold=cfg["cats_threshold"],
            multilabel_score=cfg["cats_multilabel_score"],
        )


_PRF = {"p": precision, "r": recall, "f": f_score}
_CATS_KEYS = (
    "cats_score", "cats_score_desc", "cats_micro_p", "cats_micro_r", "cats_micro_f", "cats_macro_p",
    "cats_macro_r", "cats_macro_f", "cats_macro_auc", "cats_f_per_type", "cats_auc_per_type",
)


def _add_per_label(into: dict[str, Counts], more: dict[str, Sequence[int]]) -> None:
    for k, v in more.items():
        into[k] = add_counts(into.get(k, [0, 0, 0]), v)
