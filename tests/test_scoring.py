from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp.data.doc import Doc
from distnlp.models.biluo import iob2_tags_from_spans
from distnlp.scoring import Scorer, combine_score, combine_score_weights, roc_auc, score, score_cats


def doc(words, **kw) -> Doc:
    if isinstance(words, int):
        words = [f"w{i}" for i in range(words)]
    return Doc(words=list(words), spaces=[True] * len(words), **kw)


# --- token attributes ----------------------------------------------------------------------------
def test_tag_and_pos_acc():
    golds = [doc(4, tags=["A", "B", "C", "D"], pos=["N", "V", None, "N"]), doc(2), doc(2, tags=["A", ""])]
    preds = [doc(4, tags=["A", "X", "C", "D"], pos=["N", "N", "N", "N"]), doc(2, tags=["A", "A"]), doc(2)]
    s = score(golds, preds, ["tag", "pos"])
    # tags: 3 of 4 right in doc 0, doc 1 unannotated, doc 2 one labelled token predicted with nothing
    assert s["tag_acc"] == pytest.approx(3 / 5)
    assert s["pos_acc"] == pytest.approx(2 / 3)  # the None token is skipped


def test_whitespace_token_counts_as_miss_like_spacy():
    gold = doc(["a", "\n", "b"], tags=["X", "SP", "Y"])
    pred = doc(["a", "\n", "b"], tags=["X", "SP", "Y"])
    # spaCy never predicts whitespace tokens: tp=2, fp=0, fn=1 -> F = 0.8
    assert score([gold], [pred], ["tag"])["tag_acc"] == pytest.approx(0.8)


def test_no_annotation_gives_none():
    s = score([doc(3)], [doc(3, tags=["A"] * 3)], ["tag", "pos", "morph", "lemma", "sents", "ents", "cats"])
    assert all(s[k] is None for k in ("tag_acc", "pos_acc", "morph_acc", "lemma_acc", "sents_f", "ents_f", "ents_per_type", "cats_score"))


def test_morph_acc_and_per_feat():
    gold = doc(4, morphs=["Case=Nom|Number=Sing", "_", "Number=Plur", None])
    pred = doc(4, morphs=["Number=Sing|Case=Nom", "", "Number=Sing", "Number=Sing"])
    s = score([gold], [pred], ["morph"])
    assert s["morph_acc"] == pytest.approx(2 / 3)  # order-insensitive; "_" == ""; None skipped
    per = s["morph_per_feat"]
    assert per["Case"] == {"p": pytest.approx(1.0), "r": pytest.approx(1.0), "f": pytest.approx(1.0)}
    # Number: gold {0:Sing, 2:Plur}, pred {0:Sing, 2:Sing} -> tp 1, fp 1, fn 1
    assert per["Number"]["p"] == pytest.approx(0.5) and per["Number"]["r"] == pytest.approx(0.5)


def test_lemma_acc():
    s = score([doc(2, lemmas=["be", "go"])], [doc(2, lemmas=["be", "went"])], ["lemma"])
    assert s["lemma_acc"] == pytest.approx(0.5)


def test_different_words_rejected():
    with pytest.raises(ValueError, match="different words"):
        score([doc(["a"])], [doc(["b"])], ["tag"])


# --- sentences -----------------------------------------------------------------------------------
def test_sents_prf():
    gold = doc(6, sent_starts=[True, False, False, True, False, False])
    pred = doc(6, sent_starts=[True, False, True, False, False, False])
    s = score([gold, doc(3)], [pred, doc(3, sent_starts=[True, True, True])], ["sents"])
    # gold {(0,3),(3,6)}, pred {(0,2),(2,6)}: no exact match; doc 2 has no gold -> skipped
    assert (s["sents_p"], s["sents_r"], s["sents_f"]) == (0.0, 0.0, 0.0)
    pred2 = doc(6, sent_starts=[True, False, False, True, True, False])
    s = score([gold], [pred2], ["sents"])
    assert s["sents_p"] == pytest.approx(1 / 3) and s["sents_r"] == pytest.approx(1 / 2)
    assert s["sents_f"] == pytest.approx(0.4)
    assert score([gold], [doc(6)], ["sents"])["sents_r"] == 0.0


# --- entities ------------------------------------------------------------------------------------
def test_ents_hand_computed():
    gold = doc(8, ent_spans=[(0, 2, "PER"), (3, 4, "LOC"), (5, 7, "ORG")])
    pred = doc(8, ent_spans=[(0, 2, "PER"), (3, 5, "LOC"), (6, 7, "MISC")])
    s = score([gold, doc(2)], [pred, doc(2, ent_spans=[(0, 1, "PER")])], ["ents"])
    assert s["ents_p"] == pytest.approx(1 / 3) and s["ents_r"] == pytest.approx(1 / 3)
    per = s["ents_per_type"]
    assert set(per) == {"PER", "LOC", "ORG", "MISC"}
    assert per["PER"]["f"] == pytest.approx(1.0) and per["ORG"]["r"] == 0.0 and per["MISC"]["p"] == 0.0


@st.composite
def span_set(draw, n, labels=("PER", "LOC", "ORG")):
    spans, i = [], 0
    while i < n:
        if draw(st.integers(0, 2)) == 0:
            e = draw(st.integers(i + 1, min(n, i + 4)))
            spans.append((i, e, draw(st.sampled_from(labels))))
            i = e
        else:
            i += 1
    return spans


@st.composite
def ent_corpus(draw):
    golds, preds = [], []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(0, 12))
        g = draw(span_set(n))
        # predictions: often a perturbed copy of gold, sometimes independent
        if draw(st.booleans()):
            p = [s for s in g if draw(st.integers(0, 3)) > 0]
            p = [(s, e, draw(st.sampled_from(("PER", "LOC", "ORG"))) if draw(st.integers(0, 4)) == 0 else lab) for s, e, lab in p]
        else:
            p = draw(span_set(n))
        golds.append(doc(n, ent_spans=g))
        preds.append(doc(n, ent_spans=p))
    return golds, preds


@settings(max_examples=200, deadline=None)
@given(ent_corpus())
def test_ents_agree_exactly_with_seqeval_strict_iob2(corpus):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    golds, preds = corpus
    s = score(golds, preds, ["ents"])
    y_true = [iob2_tags_from_spans(len(d), d.ent_spans) for d in golds]
    y_pred = [iob2_tags_from_spans(len(d), d.ent_spans) for d in preds]
    n_gold = sum(len(d.ent_spans) for d in golds)
    n_pred = sum(len(d.ent_spans) for d in preds)
    if n_gold == 0 and n_pred == 0:
        assert s["ents_f"] is None  # spaCy: nothing to score
        return
    kw = dict(mode="strict", scheme=IOB2, average="micro")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on 0/0, which it scores as 0 like spaCy
        p, r, f = precision_score(y_true, y_pred, **kw), recall_score(y_true, y_pred, **kw), f1_score(y_true, y_pred, **kw)
    assert s["ents_p"] == p
    assert s["ents_r"] == r
    assert s["ents_f"] == f
    # per type, against seqeval's per-label report
    from seqeval.metrics import classification_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True)
    for label, prf in s["ents_per_type"].items():
        assert prf["p"] == rep[label]["precision"] and prf["r"] == rep[label]["recall"] and prf["f"] == rep[label]["f1-score"]


# --- cats ----------------------------------------------------------------------------------------
def test_cats_exclusive_hand_computed():
    golds = [doc(1, cats={"a": 1.0, "b": 0.0, "c": 0.0}), doc(1, cats={"a": 0.0, "b": 1.0, "c": 0.0}),
             doc(1, cats={"a": 0.0, "b": 0.0, "c": 1.0}), doc(1)]
    preds = [doc(1, cats={"a": 0.7, "b": 0.2, "c": 0.1}), doc(1, cats={"a": 0.6, "b": 0.3, "c": 0.1}),
             doc(1, cats={"a": 0.1, "b": 0.1, "c": 0.8}), doc(1, cats={"a": 1.0, "b": 0.0, "c": 0.0})]
    s = score(golds, preds, ["cats"], cats_labels=["a", "b", "c"])
    # a: tp1 fp1; b: fn1; c: tp1 -> micro p = r = 2/3
    assert s["cats_micro_p"] == pytest.approx(2 / 3) and s["cats_micro_r"] == pytest.approx(2 / 3)
    fa, fb, fc = 2 * 0.5 * 1 / 1.5, 0.0, 1.0
    assert s["cats_macro_f"] == pytest.approx((fa + fb + fc) / 3)
    assert s["cats_score"] == s["cats_macro_f"] and s["cats_score_desc"] == "macro F"
    assert s["cats_f_per_type"]["b"] == {"p": 0.0, "r": 0.0, "f": 0.0}
    # AUC a: golds [1,0,0] scores [.7,.6,.1] -> 1.0; b: [0,1,0] [.2,.3,.1] -> 1.0; c: 1.0
    assert s["cats_macro_auc"] == pytest.approx(1.0)


def test_cats_binary_positive_label():
    golds = [doc(1, cats={"pos": 1.0, "neg": 0.0}), doc(1, cats={"pos": 0.0, "neg": 1.0}), doc(1, cats={"pos": 1.0, "neg": 0.0})]
    preds = [doc(1, cats={"pos": 0.9, "neg": 0.1}), doc(1, cats={"pos": 0.6, "neg": 0.4}), doc(1, cats={"pos": 0.3, "neg": 0.7})]
    s = score(golds, preds, ["cats"], cats_labels=["pos", "neg"], cats_positive_label="pos")
    # pos: tp 1, fp 1, fn 1 -> F 0.5
    assert s["cats_score"] == pytest.approx(0.5) and s["cats_score_desc"] == "F (pos)"


def test_cats_multilabel():
    golds = [doc(1, cats={"a": 1.0, "b": 1.0}), doc(1, cats={"a": 0.0, "b": None}), doc(1, cats={"a": 1.0})]
    preds = [doc(1, cats={"a": 0.9, "b": 0.2}), doc(1, cats={"a": 0.6, "b": 0.9}), doc(1, cats={"a": 0.4, "b": 0.1})]
    s = score(golds, preds, ["cats"], cats_labels=["a", "b"], cats_exclusive=False)
    # a: tp(0.9), fp(0.6), fn(0.4); b: fn(0.2), None skipped, absent gold -> 0.0 with pred .1: nothing
    assert s["cats_f_per_type"]["a"]["p"] == pytest.approx(0.5) and s["cats_f_per_type"]["a"]["r"] == pytest.approx(0.5)
    assert s["cats_f_per_type"]["b"]["r"] == 0.0
    # AUC a: golds [1,0,1] scores [.9,.6,.4] -> pairs (0.9>0.6 yes, 0.4>0.6 no) = 0.5; b: golds [1, 0] [.2, .1] -> 1
    assert s["cats_auc_per_type"] == {"a": pytest.approx(0.5), "b": pytest.approx(1.0)}
    assert s["cats_score"] == pytest.approx(0.75) and s["cats_score_desc"] == "macro AUC"
    f = score(golds, preds, ["cats"], cats_labels=["a", "b"], cats_exclusive=False, cats_multilabel_score="f")
    assert f["cats_score"] == f["cats_macro_f"] and f["cats_score_desc"] == "macro F"


def test_roc_auc_with_ties_matches_trapezoid():
    golds = [1, 0, 1, 0, 1, 0, 0]
    scores = [0.5, 0.5, 0.9, 0.1, 0.3, 0.3, 0.8]

    def trapezoid(y, s):
        pts = sorted(set(s), reverse=True)
        P, N = sum(y), len(y) - sum(y)
        xs, ys = [0.0], [0.0]
        for t in pts:
            xs.append(sum(1 for yi, si in zip(y, s) if si >= t and not yi) / N)
            ys.append(sum(1 for yi, si in zip(y, s) if si >= t and yi) / P)
        return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))

    assert roc_auc(golds, scores) == pytest.approx(trapezoid(golds, scores))
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


# --- dependencies --------------------------------------------------------------------------------
def test_deps_hand_computed_like_spacy_score_deps():
    words = ["She", "ate", "fish", ".", "Yes"]
    gold = doc(words, heads=[1, 1, 1, 1, None], deps=["nsubj", "root", "obj", "punct", None])
    # fish: right head, wrong label; ".": punct is not scored; "Yes": gold head missing, not scored
    pred = doc(words, heads=[1, 1, 1, 2, 1], deps=["nsubj", "root", "iobj", "punct", "obj"])
    s = score([gold], [pred], ["dep"])
    assert s["dep_uas"] == pytest.approx(1.0)  # 3 of 3 scored arcs
    assert s["dep_las"] == pytest.approx(2 / 3)
    assert s["dep_las_per_type"]["obj"] == {"p": 0.0, "r": 0.0, "f": 0.0}
    assert s["dep_las_per_type"]["iobj"]["p"] == 0.0 and "punct" not in s["dep_las_per_type"]
    # a gold non-punct arc predicted as punct leaves the predicted set: a miss, not an error
    pred.deps = ["punct", "root", "obj", "punct", "obj"]
    s = score([gold], [pred], ["dep"])
    assert s["dep_uas"] == pytest.approx(2 * (1.0 * 2 / 3) / (1.0 + 2 / 3))  # p = 2/2, r = 2/3


def test_deps_without_gold_heads_give_none():
    s = score([doc(3)], [doc(3, heads=[0, 0, 0], deps=["root", "dep", "dep"])], ["dep"])
    assert s["dep_uas"] is None and s["dep_las"] is None and s["dep_las_per_type"] is None


# --- merging -------------------------------------------------------------------------------------
@st.composite
def full_corpus(draw):
    tagset, labels = ["A", "B", "C"], ["x", "y", "z"]
    golds, preds = [], []
    for _ in range(draw(st.integers(1, 10))):
        n = draw(st.integers(0, 8))
        col = lambda: draw(st.one_of(st.none(), st.lists(st.sampled_from(tagset), min_size=n, max_size=n)))
        mor = lambda: draw(st.one_of(st.none(), st.lists(st.sampled_from(["_", "F=1", "F=2|G=1", "G=1"]), min_size=n, max_size=n)))
        ss = lambda: draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n, max_size=n)))
        cats = lambda: draw(st.one_of(st.none(), st.fixed_dictionaries({lab: st.sampled_from([0.0, 0.2, 0.6, 1.0]) for lab in labels})))
        heads = lambda: draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, max(n - 1, 0))), min_size=n, max_size=n)))
        deps = lambda: draw(st.lists(st.sampled_from(["nsubj", "obj", "punct", "root"]), min_size=n, max_size=n))
        golds.append(doc(n, tags=col(), pos=col(), morphs=mor(), sent_starts=ss(), ent_spans=draw(st.one_of(st.none(), span_set(n))), cats=cats(),
                         heads=heads(), deps=deps()))
        preds.append(doc(n, tags=col(), pos=col(), morphs=mor(), sent_starts=ss(), ent_spans=draw(span_set(n)), cats=cats(), heads=heads(), deps=deps()))
    return golds, preds


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.parametrize("exclusive", [True, False])
@settings(max_examples=60, deadline=None)
@given(corpus=full_corpus(), cuts=st.lists(st.integers(0, 10), max_size=3))
def test_merge_equals_whole(exclusive, corpus, cuts):
    golds, preds = corpus
    opts = dict(cats_exclusive=exclusive, cats_labels=["x", "y", "z"])
    whole = Scorer(**opts).update(golds, preds).scores()
    bounds = sorted({0, len(golds), *[min(c, len(golds)) for c in cuts]})
    states = [Scorer(**opts).update(golds[a:b], preds[a:b]).state() for a, b in zip(bounds, bounds[1:])]
    import json

    states = [json.loads(json.dumps(s)) for s in states]  # states are plain data
    merged = Scorer.merge(states).scores()
    assert _same(whole, merged)


def test_merge_rejects_mismatched_settings():
    with pytest.raises(ValueError, match="different settings"):
        Scorer.merge([Scorer(["tag"]).state(), Scorer(["pos"]).state()])


# --- combine_score -------------------------------------------------------------------------------
def test_combine_score():
    scores = {"tag_acc": 0.9, "ents_f": 0.6, "ents_p": 0.5, "ents_per_type": {"PER": {}}, "dep_las": None}
    assert combine_score(scores, {"tag_acc": 1.0}) == pytest.approx(0.9)
    assert combine_score(scores, {"tag_acc": 0.5, "ents_f": 0.5, "ents_per_type": None}) == pytest.approx(0.75)
    assert combine_score(scores, {"tag_acc": 2.0, "ents_f": 1.0, "ents_p": 0.0}) == pytest.approx((1.8 + 0.6) / 3)
    # a score that exists but is None (no annotation) drops out and the rest renormalize
    assert combine_score(scores, {"tag_acc": 0.5, "dep_las": 0.5}) == pytest.approx(0.9)
    assert combine_score(scores, {"ents_per_type": None}) == 0.0
    with pytest.raises(ValueError, match="available: .*tag_acc"):
        combine_score(scores, {"ents_F": 1.0})
    with pytest.raises(ValueError, match="not a number"):
        combine_score(scores, {"ents_per_type": 1.0})


def test_combine_score_weights_like_spacy():
    w = combine_score_weights([{"tag_acc": 1.0}, {"ents_f": 1.0, "ents_p": 0.0, "ents_per_type": None}], {"tag_acc": 2.0})
    assert w == {"tag_acc": 0.67, "ents_f": 0.33, "ents_p": 0.0, "ents_per_type": None}
