"""A spaCy training config (`config.cfg`) as a distnlp experiment overlay.

`translate(cfg)` maps what distnlp has an equivalent for (tok2vec or transformer embedding,
listeners or independent embeddings, `grad_factor`, the components distnlp trains, `[training]`,
`[initialize]`, `[pretraining]`) and lists every other setting with its config path and why.
Nothing is dropped silently: every leaf of the spaCy config is either used, or listed, or
empty (`null`, `[]`, `{}`: nothing to translate).

Blocks a partial config leaves out take spaCy's defaults, as `spacy init fill-config` fills
them (the values below marked "spaCy's default"); for the embedding these are also distnlp's own
defaults (conf/encoder/tok2vec.yaml), so a missing block and spaCy's filled block train alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

# spaCy's tok2vec defaults (spacy/pipeline/tok2vec.py DEFAULT_TOK2VEC_MODEL)
SPACY_EMBED = {"width": 96, "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [5000, 1000, 2500, 2500], "include_static_vectors": False}
SPACY_ENCODE = {"width": 96, "depth": 4, "window_size": 1, "maxout_pieces": 3}
# spaCy's [training] defaults (spacy/default_config.cfg)
SPACY_TRAINING = {"dropout": 0.1, "accumulate_gradient": 1, "patience": 1600, "max_epochs": 0, "max_steps": 20000, "eval_frequency": 200}

POOLING = {f"reduce_{k}.v1": f"distnlp.reduce_{k}.v1" for k in ("mean", "max", "first", "last", "sum")}
SPAN_GETTERS = ("strided_spans.v1", "doc_spans.v1", "sent_spans.v1")
LISTENERS = ("spacy.Tok2VecListener.v1", "spacy-transformers.TransformerListener.v1",
             "spacy-curated-transformers.LastTransformerLayerListener.v1")
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
SPACY_SCORERS = ("spacy.tagger_scorer.v1", "spacy.morphologizer_scorer.v1", "spacy.senter_scorer.v1", "spacy.parser_scorer.v1",
                 "spacy.ner_scorer.v1", "spacy.textcat_scorer.v2", "spacy.textcat_multilabel_scorer.v2", "spacy.lemmatizer_scorer.v1")


@dataclass
class Translation:
    overlay: dict[str, Any]
    # config group -> the option whose node the translated values complete (conf/GROUP/OPTION.yaml)
    bases: dict[str, str]
    untranslated: list[tuple[str, str]] = field(default_factory=list)  # (spaCy config path, why)


def load_spacy_config(path: str | Path) -> dict[str, Any]:
    """The spaCy config as plain data, `${...}` resolved (needs the `spacy` extra: thinc parses it)."""
    from .spacy_import import require_spacy

    require_spacy("distnlp init config --from-spacy")
    from thinc.api import Config

    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(path), "spaCy config file not found", "pass the config.cfg that `spacy train` uses")
    try:
        cfg = Config().from_disk(p, interpolate=True)
    except Exception as exc:  # configparser / thinc errors: name the file, keep the first line
        raise ConfigError(str(path), f"not a readable spaCy config ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]})",
                          "check it with `python -m spacy debug config`") from None
    return _plain(dict(cfg))


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


class _Tracker:
    """Reads the spaCy config and remembers which leaves were used or explained."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.used: set[str] = set()
        self.notes: dict[str, str] = {}
        self.listed: list[tuple[str, str]] = []  # listed whatever the leaves (e.g. a name without a block)

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.cfg
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def take(self, path: str, default: Any = None) -> Any:
        """The value at `path` (default when absent), marked as translated."""
        self.used.add(path)
        value = self.get(path, default)
        if isinstance(value, dict):  # a whole block taken: every leaf inside is used
            self.used.update(f"{path}.{leaf}" for leaf, _ in _leaves(value))
        return value

    def block(self, path: str) -> dict[str, Any]:
        value = self.get(path)
        return value if isinstance(value, dict) else {}

    def note(self, path: str, why: str) -> None:
        """`path` (a leaf or a whole block) is not translated, for this reason."""
        self.notes.setdefault(path, why)

    def neutral(self, path: str, value: Any) -> None:
        """Used when it has spaCy's default (distnlp's only behaviour), listed otherwise."""
        if self.get(path) == value or self.get(path, value) == value:
            self.used.add(path)
        else:
            self.note(path, f"{self.get(path)!r}: distnlp has only spaCy's default behaviour ({value!r})")

    def untranslated(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = list(self.listed)
        for path, value in _leaves(self.cfg):
            if path in self.used or value in (None, [], {}, ""):
                continue
            why = next((w for p, w in self.notes.items() if path == p or path.startswith(p + ".")), None)
            out.append((path, why or f"{value!r}: no distnlp equivalent"))
        return out


def _leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_leaves(value, path + "."))
        else:
            out.append((path, value))
    return out


def translate(cfg: dict[str, Any]) -> Translation:
    t = _Tracker(cfg)
    overlay: dict[str, Any] = {}
    bases: dict[str, str] = {"training": "default", "pretrain": "characters"}
    seed = t.take("system.seed")
    if seed is not None:
        overlay["seed"] = int(seed)
    t.take("training.seed")
    t.take("system.gpu_allocator")  # distnlp runs torch only: there is no allocator to pick
    t.take("training.gpu_allocator")
    pipeline = list(t.take("nlp.pipeline", []))
    overlay["nlp"] = {"lang": str(t.take("nlp.lang", "en"))}
    t.take("nlp.batch_size")
    t.neutral("nlp.tokenizer.@tokenizers", "spacy.Tokenizer.v1")
    t.neutral("nlp.vectors.@vectors", "spacy.Vectors.v1")

    names = [n for n in pipeline if n in t.block("components")]
    for n in pipeline:
        if n not in names:
            t.listed.append(("nlp.pipeline", f"{n!r} has no [components.{n}] block: left out of the pipeline"))
    embedders = [n for n in names if t.get(f"components.{n}.factory") in ("tok2vec", "transformer", "curated_transformer")]
    encoder: dict[str, Any] = {}
    if embedders:
        first = embedders[0]
        for extra in embedders[1:]:
            t.note(f"components.{extra}", "a second embedding component: distnlp shares one encoder (components listen to the first)")
        encoder, kind = _embedder(t, first)
        bases["encoder"] = kind
    components: dict[str, Any] = {}
    order: list[str] = []
    for name in names:
        factory = t.get(f"components.{name}.factory")
        if name in embedders:
            continue
        if factory not in HEAD_FACTORIES:
            t.note(f"components.{name}", f"factory {factory!r} has no distnlp equivalent: left out of the pipeline")
            continue
        components[name] = _component(t, name, HEAD_FACTORIES[factory], encoder)
        order.append(name)
    overlay["nlp"]["pipeline"] = order
    encoder.pop("pooled_by_listener", None)
    if encoder:
        overlay["encoder"] = encoder
    if components:
        overlay["components"] = components
    overlay["training"] = _training(t, components)
    _initialize(t)
    _corpora(t)
    pretrain = _pretraining(t, embedders[0] if embedders else None, overlay)
    if pretrain:
        overlay["pretrain"] = pretrain
    return Translation(overlay, {g: b for g, b in bases.items() if g in overlay}, t.untranslated())


# --- the embedding ---------------------------------------------------------------------------
def _embedder(t: _Tracker, name: str) -> tuple[dict[str, Any], str]:
    base = f"components.{name}"
    factory = t.take(f"{base}.factory")
    if factory == "tok2vec":
        width, model = _tok2vec(t, f"{base}.model")
        return {"factory": "tok2vec", "width": width, "model": model}, "tok2vec"
    return _transformer(t, base, factory), "transformer"


def _tok2vec(t: _Tracker, path: str) -> tuple[int, dict[str, Any]]:
    """(width, distnlp.Tok2Vec.v1 config) from a spaCy Tok2Vec / HashEmbedCNN block."""
    arch = t.take(f"{path}.@architectures", "spacy.Tok2Vec.v2")
    if arch in ("spacy.HashEmbedCNN.v1", "spacy.HashEmbedCNN.v2"):
        width = int(t.take(f"{path}.width", 96))
        size = int(t.take(f"{path}.embed_size", 2000))
        subword = bool(t.take(f"{path}.subword_features", True))
        attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"] if subword else ["NORM"]
        static = t.take(f"{path}.pretrained_vectors")
        embed = {"_use_": "distnlp.MultiHashEmbed.v1", "width": width, "attrs": attrs,
                 "rows": [size] + [size // 2] * (len(attrs) - 1), "include_static_vectors": bool(static)}
        encode = {"_use_": "distnlp.MaxoutWindowEncoder.v1", "width": width, "depth": int(t.take(f"{path}.depth", 4)),
                  "window_size": int(t.take(f"{path}.window_size", 1)), "maxout_pieces": int(t.take(f"{path}.maxout_pieces", 3))}
        return width, {"_use_": "distnlp.Tok2Vec.v1", "embed": embed, "encode": encode}
    if arch not in ("spacy.Tok2Vec.v1", "spacy.Tok2Vec.v2"):
        t.note(path, f"architecture {arch!r} has no distnlp equivalent: spaCy's default Tok2Vec is used instead")
        arch = "spacy.Tok2Vec.v2"
    embed_path, encode_path = f"{path}.embed", f"{path}.encode"
    embed_arch = t.take(f"{embed_path}.@architectures", "spacy.MultiHashEmbed.v2")
    if embed_arch not in ("spacy.MultiHashEmbed.v1", "spacy.MultiHashEmbed.v2"):
        t.note(embed_path, f"{embed_arch!r} has no distnlp equivalent: spaCy's default MultiHashEmbed is used instead")
        embed_arch = None
    encode_arch = t.get(f"{encode_path}.@architectures", "spacy.MaxoutWindowEncoder.v2")
    if encode_arch in ("spacy.MishWindowEncoder.v1", "spacy.MishWindowEncoder.v2"):
        # same width, depth and window; only the activation differs
        t.note(f"{encode_path}.@architectures", f"{encode_arch!r}: distnlp has MaxoutWindowEncoder (maxout instead of mish, same width/depth/window)")
    elif encode_arch not in ("spacy.MaxoutWindowEncoder.v1", "spacy.MaxoutWindowEncoder.v2"):
        t.note(encode_path, f"{encode_arch!r} has no distnlp equivalent: spaCy's default MaxoutWindowEncoder is used instead")
        encode_arch = None
    else:
        t.take(f"{encode_path}.@architectures")

    def value(block: str, key: str, default: Any, usable: Any) -> Any:
        return t.take(f"{block}.{key}", default) if usable else default

    width = int(value(encode_path, "width", SPACY_ENCODE["width"], encode_arch))
    embed = {
        "_use_": "distnlp.MultiHashEmbed.v1",
        "width": int(value(embed_path, "width", width, embed_arch)),
        "attrs": [str(a) for a in value(embed_path, "attrs", SPACY_EMBED["attrs"], embed_arch)],
        "rows": [int(r) for r in value(embed_path, "rows", SPACY_EMBED["rows"], embed_arch)],
        "include_static_vectors": bool(value(embed_path, "include_static_vectors", False, embed_arch)),
    }
    encode = {
        "_use_": "distnlp.MaxoutWindowEncoder.v1",
        "width": width,
        "depth": int(value(encode_path, "depth", SPACY_ENCODE["depth"], encode_arch)),
        "window_size": int(value(encode_path, "window_size", SPACY_ENCODE["window_size"], encode_arch)),
        "maxout_pieces": int(value(encode_path, "maxout_pieces", SPACY_ENCODE["maxout_pieces"], encode_arch)),
    }
    return width, {"_use_": "distnlp.Tok2Vec.v1", "embed": embed, "encode": encode}


def _transformer(t: _Tracker, base: str, factory: str) -> dict[str, Any]:
    """encoder=transformer settings from a spacy-transformers / curated-transformers component."""
    model_path = f"{base}.model"
    arch = str(t.take(f"{model_path}.@architectures", ""))
    # distnlp.Transformer.v1's own defaults cover what the spaCy config does not set; spaCy's
    # listeners pool with reduce_mean unless they say otherwise
    model: dict[str, Any] = {"_use_": "distnlp.Transformer.v1", "name": "${encoder.name}", "pooling": {"_use_": "distnlp.reduce_mean.v1"}}
    encoder: dict[str, Any] = {"factory": "transformer", "model": model}
    if factory == "transformer":
        if not arch.startswith("spacy-transformers.TransformerModel."):
            t.note(model_path, f"architecture {arch!r} is not spacy-transformers.TransformerModel")
        encoder["name"] = str(t.take(f"{model_path}.name", "roberta-base"))
        spans = f"{model_path}.get_spans"
        getter = str(t.take(f"{spans}.@span_getters", "spacy-transformers.strided_spans.v1"))
        model["get_spans"] = _span_getter(t, spans, getter.split(".", 1)[-1] if "." in getter else getter)
        for key in ("tokenizer_config", "transformer_config"):
            value = dict(t.take(f"{model_path}.{key}", {}) or {})
            if key == "tokenizer_config" and "use_fast" in value:
                # distnlp always loads the fast tokenizer (its word alignment needs offsets)
                if not value.pop("use_fast"):
                    t.used.discard(f"{model_path}.tokenizer_config.use_fast")
                    t.note(f"{model_path}.tokenizer_config.use_fast", "distnlp always uses the fast tokenizer")
            model[key] = value
        model["mixed_precision"] = bool(t.take(f"{model_path}.mixed_precision", False))
        t.note(f"{model_path}.grad_scaler_config", "distnlp uses bf16 autocast (no gradient scaler)")
        setter = t.take(f"{base}.set_extra_annotations.@annotation_setters", "spacy-transformers.null_annotation_setter.v1")
        if setter == "spacy-transformers.null_annotation_setter.v1":
            model["set_extra_annotations"] = {"_use_": "distnlp.null_annotation_setter.v1"}
        else:
            t.note(f"{base}.set_extra_annotations", f"{setter!r}: distnlp has distnlp.null_annotation_setter.v1 and distnlp.trf_data_setter.v1")
        max_items = t.take(f"{base}.max_batch_items")
        if max_items is not None:
            model["max_batch_items"] = int(max_items)
    else:  # curated transformers: the model name is in its [initialize] encoder loader
        t.neutral(f"{base}.all_layer_outputs", False)
        t.neutral(f"{base}.frozen", False)
        loader = f"initialize.components.{base.split('.', 1)[1]}.encoder_loader"
        name = t.take(f"{loader}.name")
        if name is None:
            t.note(model_path, "no [initialize.components.NAME.encoder_loader] name: set encoder.name")
        else:
            encoder["name"] = str(name)
        t.take(f"{loader}.@model_loaders")
        t.neutral(f"{loader}.revision", "main")  # distnlp loads the default revision
        t.take(f"{model_path}.@architectures")
        spans = f"{model_path}.with_spans"
        getter = str(t.take(f"{spans}.@architectures", "spacy-curated-transformers.WithStridedSpans.v1"))
        if "WithStridedSpans" in getter:
            model["get_spans"] = {"_use_": "distnlp.strided_spans.v1", "window": int(t.take(f"{spans}.window", 128)),
                                  "stride": int(t.take(f"{spans}.stride", 96))}
        else:
            t.note(spans, f"{getter!r}: distnlp has strided, doc and sentence spans")
        t.note(f"{model_path}.piece_encoder", "distnlp uses the model's own Hugging Face tokenizer")
        t.note(f"initialize.components.{base.split('.', 1)[1]}.piecer_loader", "distnlp uses the model's own Hugging Face tokenizer")
        for key, _ in _leaves(t.block(model_path)):
            if not key.split(".")[0] in ("with_spans", "piece_encoder", "mixed_precision"):
                t.take(f"{model_path}.{key}")  # sizes and dropouts: the loaded model's own config gives them
        model["mixed_precision"] = bool(t.take(f"{model_path}.mixed_precision", False))
    return encoder


def _span_getter(t: _Tracker, path: str, kind: str) -> dict[str, Any]:
    if kind == "strided_spans.v1":
        return {"_use_": "distnlp.strided_spans.v1", "window": int(t.take(f"{path}.window", 128)), "stride": int(t.take(f"{path}.stride", 96))}
    if kind == "doc_spans.v1":
        return {"_use_": "distnlp.doc_spans.v1"}
    if kind == "sent_spans.v1":
        # evaluation and raw text give docs without sentences (spaCy would stop with E030): whole docs
        return {"_use_": "distnlp.sent_spans.v1", "on_missing": "doc"}
    t.note(path, f"span getter {kind!r}: distnlp has {', '.join(SPAN_GETTERS)}; strided spans are used")
    return {"_use_": "distnlp.strided_spans.v1", "window": 128, "stride": 96}


# --- components ------------------------------------------------------------------------------
def _component(t: _Tracker, name: str, factory: str, encoder: dict[str, Any]) -> dict[str, Any]:
    base = f"components.{name}"
    t.take(f"{base}.factory")
    model_path = f"{base}.model"
    arch = str(t.take(f"{model_path}.@architectures", ""))
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
    scorer = t.get(f"{base}.scorer.@scorers")
    if scorer is None or scorer in SPACY_SCORERS:
        t.take(f"{base}.scorer.@scorers")
    if arch.startswith("spacy.TransitionBasedParser"):
        what = "a biaffine graph parser (distnlp.BiaffineParserHead.v1)" if factory == "parser" else "a BILUO tagger with constrained decoding (distnlp.NERHead.v1)"
        for key in ("state_type", "extra_state_tokens", "hidden_width", "maxout_pieces", "use_upper"):
            t.note(f"{model_path}.{key}", f"transition-based parser setting: distnlp's {factory} is {what}")
        for key in ("update_with_oracle_cut_size", "min_action_freq"):
            t.note(f"{base}.{key}", f"transition-based parser setting: distnlp's {factory} is {what}")
    tok2vec_path = f"{model_path}.tok2vec"
    if not t.block(tok2vec_path):
        # e.g. TextCatBOW: no embedding in spaCy's model; distnlp's head needs one: its own tok2vec
        if arch:
            t.note(model_path, f"{arch!r} has no embedding: distnlp gives it its own spaCy-default tok2vec")
        _, embed = _tok2vec(t, "components.__none__")
        comp.update(listen=None, embed=embed, grad_factor=1.0)
    else:
        listener = t.take(f"{tok2vec_path}.@architectures")
        if listener in LISTENERS:
            comp["listen"] = "encoder"
            comp["grad_factor"] = float(t.take(f"{tok2vec_path}.grad_factor", 1.0))
            t.take(f"{tok2vec_path}.width")
            t.take(f"{tok2vec_path}.upstream")
            if t.get(f"{tok2vec_path}.pooling") is not None:
                _pooling(t, f"{tok2vec_path}.pooling", encoder)
        else:
            t.used.discard(f"{tok2vec_path}.@architectures")
            _, embed = _tok2vec(t, tok2vec_path)
            comp.update(listen=None, embed=embed, grad_factor=1.0)
    comp["model"] = head
    if factory in DEFAULT_WEIGHTS:
        comp["score_weights"] = dict(DEFAULT_WEIGHTS[factory])
    return comp


def _pooling(t: _Tracker, path: str, encoder: dict[str, Any]) -> None:
    """Listener pooling: one per encoder in distnlp (the transformer pools once for every head)."""
    layer = t.get(f"{path}.@layers")
    if layer not in POOLING:
        t.note(path, f"{layer!r}: distnlp pools with {', '.join(POOLING)}")
        return
    model = encoder.setdefault("model", {})
    chosen = model.get("pooling", {}).get("_use_")
    if encoder.get("pooled_by_listener") and chosen != POOLING[layer]:
        t.note(path, f"{layer!r}: distnlp pools once for every listener, with the first listener's {chosen}")
        return
    model["pooling"] = {"_use_": POOLING[layer]}
    encoder["pooled_by_listener"] = True
    t.take(f"{path}.@layers")


# --- [training], [initialize], [corpora], [pretraining] ----------------------------------------
def _training(t: _Tracker, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("dropout", "accumulate_gradient", "patience", "max_epochs", "max_steps", "eval_frequency"):
        value = t.take(f"training.{key}", SPACY_TRAINING[key])
        out[key] = float(value) if key == "dropout" else int(value)
    if out["max_epochs"] < 0:
        t.used.discard("training.max_epochs")
        t.note("training.max_epochs", "-1 (stream the corpus without epochs): distnlp counts epochs; no epoch limit is set")
        out["max_epochs"] = 0
    if out["max_steps"] == 0 and out["max_epochs"] == 0:
        t.used.discard("training.max_steps")
        t.note("training.max_steps", "0 with max_epochs 0 (no limit): distnlp needs a limit, so spaCy's default 20000 is used")
        out["max_steps"] = SPACY_TRAINING["max_steps"]
    for key in ("dev_corpus", "train_corpus"):
        t.take(f"training.{key}")
    for key in ("frozen_components", "annotating_components"):
        if t.get(f"training.{key}"):
            t.note(f"training.{key}", "not supported: every listed component trains")
    t.neutral("training.logger.@loggers", "spacy.ConsoleLogger.v1")
    t.take("training.logger.progress_bar")
    out["optimizer"] = _optimizer(t, "training.optimizer")
    out["batcher"] = _batcher(t, "training.batcher")
    weights = _score_weights(t, components)
    if weights:
        out["score_weights"] = weights
    return out


def _optimizer(t: _Tracker, path: str) -> dict[str, Any]:
    name = t.take(f"{path}.@optimizers", "Adam.v1")
    if name not in ("Adam.v1", "AdamW.v1"):
        t.note(f"{path}.@optimizers", f"{name!r}: distnlp has Adam and AdamW; Adam's settings are used")
    decoupled = bool(t.take(f"{path}.L2_is_weight_decay", True)) or name == "AdamW.v1"
    out = {
        "algorithm": "adamw" if decoupled else "adam",  # torch Adam adds L2 to the gradient, as thinc does without it
        "beta1": float(t.take(f"{path}.beta1", 0.9)), "beta2": float(t.take(f"{path}.beta2", 0.999)),
        "eps": float(t.take(f"{path}.eps", 1e-8)), "weight_decay": float(t.take(f"{path}.L2", 0.01)),
        "grad_clip": float(t.take(f"{path}.grad_clip", 1.0)), "use_averages": bool(t.take(f"{path}.use_averages", False)),
        "learn_rate": _schedule(t, f"{path}.learn_rate", 0.001),
    }
    return out


def _schedule(t: _Tracker, path: str, default: float) -> Any:
    value = t.get(path, default)
    if not isinstance(value, dict):
        t.take(path)
        return float(value)
    name = t.take(f"{path}.@schedules")
    if name == "warmup_linear.v1":
        return {"_use_": "distnlp.warmup_linear.v1", "initial_rate": float(t.take(f"{path}.initial_rate")),
                "warmup_steps": int(t.take(f"{path}.warmup_steps")), "total_steps": int(t.take(f"{path}.total_steps"))}
    if name == "compounding.v1":
        if t.get(f"{path}.t", 0.0) not in (0, 0.0):
            t.note(f"{path}.t", "compounding's start offset is not supported")
        t.take(f"{path}.t")
        return {"_use_": "distnlp.compounding.v1", "start": float(t.take(f"{path}.start")), "stop": float(t.take(f"{path}.stop")),
                "compound": float(t.take(f"{path}.compound"))}
    if name == "constant.v1":
        return float(t.take(f"{path}.rate"))
    t.note(path, f"schedule {name!r}: distnlp has warmup_linear, compounding, constant (and warmup_cosine); its start value is used")
    return float(t.get(f"{path}.initial_rate", t.get(f"{path}.start", default)))


def _batcher(t: _Tracker, path: str) -> dict[str, Any]:
    name = t.take(f"{path}.@batchers", "spacy.batch_by_words.v1")
    if t.get(f"{path}.get_length") is not None:
        t.note(f"{path}.get_length", "a custom length function is not supported (documents are counted in words)")
    if name == "spacy.batch_by_padded.v1":
        return {"_use_": "distnlp.batch_by_padded.v1", "size": _schedule(t, f"{path}.size", 2000),
                "buffer": int(t.take(f"{path}.buffer", 256)), "discard_oversize": bool(t.take(f"{path}.discard_oversize", False))}
    if name == "spacy.batch_by_sequence.v1":
        return {"_use_": "distnlp.batch_by_sequence.v1", "size": _schedule(t, f"{path}.size", 32)}
    if name != "spacy.batch_by_words.v1":
        t.note(path, f"batcher {name!r}: distnlp has batch_by_words, batch_by_padded, batch_by_sequence; batch_by_words is used")
    size = t.get(f"{path}.size")
    return {"_use_": "distnlp.batch_by_words.v1",
            "size": _schedule(t, f"{path}.size", 1000) if size is not None else
            {"_use_": "distnlp.compounding.v1", "start": 100.0, "stop": 1000.0, "compound": 1.001},  # spaCy's default
            "tolerance": float(t.take(f"{path}.tolerance", 0.2)), "discard_oversize": bool(t.take(f"{path}.discard_oversize", False))}


def _score_weights(t: _Tracker, components: dict[str, Any]) -> dict[str, float]:
    reported = {s for comp in components.values() for s in SCORES.get(comp["factory"], ())}
    out: dict[str, float] = {}
    for key, weight in (t.block("training.score_weights")).items():
        path = f"training.score_weights.{key}"
        if weight is None or weight == 0:
            t.take(path)  # no part in the final score: leaving it out is the same
        elif key in reported:
            out[key] = float(t.take(path))
        else:
            t.note(path, f"weight {weight} for a score distnlp's pipeline does not report")
    return out


def _initialize(t: _Tracker) -> None:
    """spaCy's vectors packages and `spacy pretrain` weights are not distnlp's formats: say how."""
    vectors = t.get("initialize.vectors")
    if vectors:
        t.note("initialize.vectors", f"{vectors!r} is a spaCy vectors package: export its table and run `distnlp init vectors` on it, then set initialize.vectors=DIR")
    else:
        t.take("initialize.vectors")
    init_tok2vec = t.get("initialize.init_tok2vec")
    if init_tok2vec:
        t.note("initialize.init_tok2vec", f"{init_tok2vec!r} holds thinc weights from `spacy pretrain`: run `distnlp pretrain` and set initialize.init_tok2vec=DIR/model-last.bin")
    else:
        t.take("initialize.init_tok2vec")


def _corpora(t: _Tracker) -> None:
    """spaCy's .spacy paths: distnlp trains on converted corpora (`distnlp convert`)."""
    for split in ("train", "dev"):
        path = t.get(f"corpora.{split}.path")
        t.take(f"corpora.{split}.@readers")
        for key, neutral in (("max_length", 0), ("gold_preproc", False), ("limit", 0), ("augmenter", None)):
            t.neutral(f"corpora.{split}.{key}", neutral)
        if path:
            t.note(f"corpora.{split}.path", f"{path!r}: run `distnlp convert {path} DIR` and set corpus.{split}=DIR")
    for key in ("train", "dev"):
        t.take(f"paths.{key}")


def _pretraining(t: _Tracker, embedder: str | None, overlay: dict[str, Any]) -> dict[str, Any]:
    block = t.block("pretraining")
    if not block:
        return {}
    out: dict[str, Any] = {}
    for key in ("max_epochs", "dropout", "n_save_every", "n_save_epoch"):
        if key in block:
            value = t.take(f"pretraining.{key}")
            out[key] = value if value is None or key == "dropout" else int(value)
    component = t.take("pretraining.component", "tok2vec")
    if component == embedder or component is None:
        out["component"] = "encoder"
    elif component in overlay.get("components", {}):
        out["component"] = component
    else:
        t.note("pretraining.component", f"{component!r} is not in the translated pipeline")
    layer = t.take("pretraining.layer", "")
    out["layer"] = "" if not layer else str(layer)
    if layer:
        t.note("pretraining.layer", f"{layer!r}: spaCy's layer names differ from distnlp's (embed, encode); check it")
    corpus = str(t.take("pretraining.corpus", "corpora.pretrain"))
    reader = t.block(corpus)
    if reader:
        t.take(f"{corpus}.@readers")
        for key in ("min_length", "max_length"):
            if key in reader:
                out[key] = int(t.take(f"{corpus}.{key}"))
        t.neutral(f"{corpus}.limit", 0)
        if reader.get("path"):
            overlay.setdefault("corpus", {})["raw_text"] = str(t.take(f"{corpus}.path"))
    t.take("paths.raw_text")
    if "batcher" in block:
        out["batcher"] = _batcher(t, "pretraining.batcher")
    if "optimizer" in block:
        out["optimizer"] = _optimizer(t, "pretraining.optimizer")
    objective = t.block("pretraining.objective")
    if objective:
        arch = t.take("pretraining.objective.@architectures")
        if arch == "spacy.PretrainCharacters.v1":
            out["objective"] = "characters"
            out["objectives"] = {"characters": {k: int(t.take(f"pretraining.objective.{k}")) for k in ("maxout_pieces", "hidden_size", "n_characters") if k in objective}}
        elif arch == "spacy.PretrainVectors.v1":
            out["objective"] = "vectors"
            vec: dict[str, Any] = {k: int(t.take(f"pretraining.objective.{k}")) for k in ("maxout_pieces", "hidden_size") if k in objective}
            if "loss" in objective:
                vec["loss"] = str(t.take("pretraining.objective.loss"))
            out["objectives"] = {"vectors": vec}
        else:
            t.note("pretraining.objective", f"{arch!r}: distnlp has the characters and vectors objectives")
    return out
