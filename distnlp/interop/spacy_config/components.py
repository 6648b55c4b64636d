"""spaCy's trainable components as distnlp components: factory, head, listener or own embedding."""
from __future__ import annotations

from typing import Any

from . import registered as reg
from .embedding import translate_pooling, translate_tok2vec
from .tracker import Tracker

LISTENERS = reg.LISTENERS
# spaCy factory -> distnlp factory
HEAD_FACTORIES = {"tagger": "tagger", "morphologizer": "morphologizer", "senter": "senter", "parser": "parser", "ner": "ner",
                  "textcat": "textcat", "textcat_multilabel": "textcat_multilabel", "trainable_lemmatizer": "lemmatizer"}
HEADS = {"tagger": "distnlp.TaggerHead.v1", "morphologizer": "distnlp.TaggerHead.v1", "senter": "distnlp.TaggerHead.v1",
         "lemmatizer": "distnlp.TaggerHead.v1", "ner": "distnlp.NERHead.v1", "parser": "distnlp.BiaffineParserHead.v1",
         "textcat": "distnlp.TextcatHead.v1", "textcat_multilabel": "distnlp.TextcatMultilabelHead.v1"}
# the scores each distnlp factory reports (for training.score_weights)
SCORES = {
    "tagger": ("tag_acc",), "morphologizer": ("pos_acc", "morph_acc", "morph_per_feat"), "senter": ("sents_p", "sents_r", "sents_f"),
    "parser": ("dep_uas", "dep_las", "dep_las_per_type"), "ner": ("ents_p", "ents_r", "ents_f", "ents_per_type"),
    "lemmatizer": ("lemma_acc",),
    "textcat": ("cats_score", "cats_micro_p", "cats_micro_r", "cats_micro_f", "cats_macro_p", "cats_macro_r", "cats_macro_f",
                "cats_macro_auc", "cats_f_per_type", "cats_auc_per_type", "cats_score_desc"),
}
SCORES["textcat_multilabel"] = SCORES["textcat"]
DEFAULT_WEIGHTS = {"senter": {"sents_f": 1.0}, "textcat_multilabel": {"cats_score": 1.0}}
# component settings whose spaCy default is the only behaviour distnlp has
NEUTRAL = {"extend": False, "neg_prefix": "!", "moves": None, "learn_tokens": False,
           "incorrect_spans_key": None, "nO": None, "normalize": False}
SPACY_SCORERS = tuple(n for names in reg.SCORERS.values() for n in names)


# --- components ------------------------------------------------------------------------------
def translate_component(t: Tracker, name: str, factory: str, encoder: dict[str, Any]) -> dict[str, Any]:
    base = f"components.{name}"
    t.take(f"{base}.factory")
    model_path = f"{base}.model"
    arch = str(t.registered(f"{model_path}.@architectures", reg.HEAD_MODELS[factory], ""))
    comp: dict[str, Any] = {"factory": factory}
    head: dict[str, Any] = {"_use_": HEADS[factory], "dropout": 0.0}
    if factory != "parser":
        head["hidden_width"] = 0
    if factory in ("tagger", "morphologizer"):
        head["label_smoothing"] = float(t.take(f"{base}.label_smoothing", 0.0))  # spaCy's default 0.0
    if factory in ("senter", "lemmatizer"):
        head["label_smoothing"] = 0.0
    if factory == "tagger":
        comp["column"] = "tags"
    if factory == "lemmatizer":
        comp["top_k"] = int(t.take(f"{base}.top_k", 1))
        comp["min_tree_freq"] = int(t.take(f"{base}.min_tree_freq", 3))
        backoff = t.take(f"{base}.backoff", "orth")
        comp["backoff"] = None if backoff is None else str(backoff)
    if factory in ("textcat", "textcat_multilabel"):
        exclusive = factory == "textcat"
        if factory == "textcat":
            head["exclusive_classes"] = True
        if t.get(f"{model_path}.exclusive_classes") not in (None, exclusive):
            t.note(f"{model_path}.exclusive_classes", f"follows the factory in distnlp ({factory})")
        else:
            t.take(f"{model_path}.exclusive_classes")
        # distnlp scores exclusive classes by the best label, multilabel ones at 0.5, as spaCy's defaults
        t.neutral(f"{base}.threshold", 0.0 if exclusive else 0.5)
        t.note(f"{model_path}.linear_model", "distnlp's textcat has no bag-of-words part (a pooled tok2vec classifier)")
        t.note(f"{model_path}.ngram_size", "distnlp's textcat has no bag-of-words part")
    if factory == "parser":
        head.update({"arc_width": 128, "label_width": 64, "use_distance": True, "lstm_width": 0})
    for key, value in NEUTRAL.items():
        t.neutral(f"{base}.{key}", value)
        t.neutral(f"{model_path}.{key}", value)
    # whether predictions replace annotations already on a doc: distnlp predicts into fresh docs
    # (and its spaCy component always writes what it predicts)
    t.take(f"{base}.overwrite")
    if t.registered(f"{base}.scorer.@scorers", reg.SCORERS[factory]) not in (None, *reg.SCORERS[factory]):
        t.note(f"{base}.scorer", f"distnlp's {factory} reports its own scores ({', '.join(SCORES[factory])})")
    if arch.startswith("spacy.TransitionBasedParser"):
        what = "a biaffine graph parser (distnlp.BiaffineParserHead.v1)" if factory == "parser" else "a BILUO tagger with constrained decoding (distnlp.NERHead.v1)"
        for key in ("state_type", "extra_state_tokens", "hidden_width", "maxout_pieces", "use_upper"):
            t.note(f"{model_path}.{key}", f"transition-based parser setting: distnlp's {factory} is {what}")
        for key in ("update_with_oracle_cut_size", "min_action_freq"):
            t.note(f"{base}.{key}", f"transition-based parser setting: distnlp's {factory} is {what}")
        t.note(f"{model_path}.@architectures", f"{arch!r} is a transition-based parser: distnlp's {factory} is {what}")
    tok2vec_path = f"{model_path}.tok2vec"
    if not t.block(tok2vec_path):
        # e.g. TextCatBOW: no embedding in spaCy's model; distnlp's head needs one: its own tok2vec
        if arch:
            t.note(model_path, f"{arch!r} has no embedding: distnlp gives it its own spaCy-default tok2vec")
        _, embed = translate_tok2vec(t, "components.__none__")
        comp.update(listen=None, embed=embed, grad_factor=1.0)
    else:
        listener = t.registered(f"{tok2vec_path}.@architectures", LISTENERS)
        if listener in LISTENERS:
            comp["listen"] = "encoder"
            comp["grad_factor"] = float(t.take(f"{tok2vec_path}.grad_factor", 1.0))
            t.take(f"{tok2vec_path}.width")
            t.take(f"{tok2vec_path}.upstream")
            if t.get(f"{tok2vec_path}.pooling") is not None:
                translate_pooling(t, f"{tok2vec_path}.pooling", encoder)
        else:
            _, embed = translate_tok2vec(t, tok2vec_path)
            comp.update(listen=None, embed=embed, grad_factor=1.0)
    if arch and arch not in reg.HEAD_MODELS[factory]:  # after the notes above: the more precise reason wins
        t.note(model_path, f"architecture {arch!r}: distnlp's {factory} is {HEADS[factory]}")
    comp["model"] = head
    if factory in DEFAULT_WEIGHTS:
        comp["score_weights"] = dict(DEFAULT_WEIGHTS[factory])
    return comp
