"""The registered functions (`@architectures`, `@layers`, `@readers`, ... nodes of a spaCy config)
that the translation maps faithfully onto distnlp, each set named by the place that reads it.

A registered-function node counts as translated exactly only when its (registry, name) pair is
in `EXACT` *and* the translator read it at its place (`Tracker.registered` accepted it there);
every other one -- an unknown or custom name, a known name where nothing reads it, a known name
that the place does not accept (a tagger model under a parser) -- is listed in the report with
its config path and registered name (`Tracker.untranslated`).
"""
from __future__ import annotations

# --- the embedding (embedding.py) --------------------------------------------------------------
TOK2VEC = ("spacy.Tok2Vec.v1", "spacy.Tok2Vec.v2")
HASH_EMBED_CNN = ("spacy.HashEmbedCNN.v1", "spacy.HashEmbedCNN.v2")
MULTI_HASH_EMBED = ("spacy.MultiHashEmbed.v1", "spacy.MultiHashEmbed.v2")
MAXOUT_ENCODER = ("spacy.MaxoutWindowEncoder.v1", "spacy.MaxoutWindowEncoder.v2")
TRANSFORMER_MODELS = ("spacy-transformers.TransformerModel.v1", "spacy-transformers.TransformerModel.v2",
                      "spacy-transformers.TransformerModel.v3")
SPAN_GETTERS = {"spacy-transformers.strided_spans.v1": "strided_spans.v1", "spacy-transformers.doc_spans.v1": "doc_spans.v1",
                "spacy-transformers.sent_spans.v1": "sent_spans.v1"}
ANNOTATION_SETTERS = ("spacy-transformers.null_annotation_setter.v1",)
# curated transformers: distnlp loads the Hugging Face model the encoder loader names
CURATED_MODELS = tuple(f"spacy-curated-transformers.{m}Transformer.v1" for m in ("Albert", "Bert", "Camembert", "Roberta", "Xlmr"))
CURATED_SPANS = ("spacy-curated-transformers.WithStridedSpans.v1",)
CURATED_LOADERS = ("spacy-curated-transformers.HFTransformerEncoderLoader.v1",)
POOLING = {f"reduce_{k}.v1": f"distnlp.reduce_{k}.v1" for k in ("mean", "max", "first", "last", "sum")}

# --- components (components.py) ----------------------------------------------------------------
LISTENERS = ("spacy.Tok2VecListener.v1", "spacy-transformers.TransformerListener.v1",
             "spacy-curated-transformers.LastTransformerLayerListener.v1")
# distnlp factory -> the spaCy model architectures its head reproduces (a linear layer on the
# embedding; TextCatCNN: mean-pooled embedding, then a linear layer). spaCy's transition-based
# parser and NER, and the bag-of-words / ensemble / reduce text classifiers, are other models:
# they are listed.
_TAGGERS = ("spacy.Tagger.v1", "spacy.Tagger.v2")
_TEXTCAT = ("spacy.TextCatCNN.v1", "spacy.TextCatCNN.v2")
HEAD_MODELS: dict[str, tuple[str, ...]] = {"tagger": _TAGGERS, "morphologizer": _TAGGERS, "senter": _TAGGERS, "lemmatizer": _TAGGERS,
                                           "parser": (), "ner": (), "textcat": _TEXTCAT, "textcat_multilabel": _TEXTCAT}
# distnlp factory -> spaCy's scorer for it (distnlp reports the same scores)
SCORERS: dict[str, tuple[str, ...]] = {
    "tagger": ("spacy.tagger_scorer.v1",), "morphologizer": ("spacy.morphologizer_scorer.v1",), "senter": ("spacy.senter_scorer.v1",),
    "parser": ("spacy.parser_scorer.v1",), "ner": ("spacy.ner_scorer.v1",), "textcat": ("spacy.textcat_scorer.v2",),
    "textcat_multilabel": ("spacy.textcat_multilabel_scorer.v2",), "lemmatizer": ("spacy.lemmatizer_scorer.v1",)}

# --- [nlp], [training], [corpora], [pretraining] (__init__.py, training.py) ------------------------
TOKENIZERS = ("spacy.Tokenizer.v1",)
VECTORS = ("spacy.Vectors.v1",)
LOGGERS = ("spacy.ConsoleLogger.v1",)
OPTIMIZERS = ("Adam.v1", "AdamW.v1")
SCHEDULES = ("warmup_linear.v1", "compounding.v1", "constant.v1")
BATCHERS = ("spacy.batch_by_words.v1", "spacy.batch_by_padded.v1", "spacy.batch_by_sequence.v1")
CORPUS_READERS = ("spacy.Corpus.v1",)
RAW_TEXT_READERS = ("spacy.JsonlCorpus.v1",)
OBJECTIVES = ("spacy.PretrainCharacters.v1", "spacy.PretrainVectors.v1")

# (registry, name): every registered function the translation maps faithfully somewhere
EXACT: frozenset[tuple[str, str]] = frozenset(
    [("@architectures", n) for n in (*TOK2VEC, *HASH_EMBED_CNN, *MULTI_HASH_EMBED, *MAXOUT_ENCODER, *TRANSFORMER_MODELS,
                                     *CURATED_MODELS, *CURATED_SPANS, *LISTENERS, *OBJECTIVES,
                                     *(a for archs in HEAD_MODELS.values() for a in archs))]
    + [("@span_getters", n) for n in SPAN_GETTERS]
    + [("@annotation_setters", n) for n in ANNOTATION_SETTERS]
    + [("@model_loaders", n) for n in CURATED_LOADERS]
    + [("@layers", n) for n in POOLING]
    + [("@scorers", n) for names in SCORERS.values() for n in names]
    + [("@tokenizers", n) for n in TOKENIZERS] + [("@vectors", n) for n in VECTORS] + [("@loggers", n) for n in LOGGERS]
    + [("@optimizers", n) for n in OPTIMIZERS] + [("@schedules", n) for n in SCHEDULES] + [("@batchers", n) for n in BATCHERS]
    + [("@readers", n) for n in (*CORPUS_READERS, *RAW_TEXT_READERS)]
)
