"""The shared embedding: spaCy's tok2vec (MultiHashEmbed / HashEmbedCNN + MaxoutWindowEncoder)
or transformer component (spacy-transformers, curated transformers), and listener pooling."""
from __future__ import annotations

from typing import Any

from . import registered as reg
from .tracker import Tracker, leaves

# spaCy's tok2vec defaults (spacy/pipeline/tok2vec.py DEFAULT_TOK2VEC_MODEL)
SPACY_EMBED = {"width": 96, "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [5000, 1000, 2500, 2500], "include_static_vectors": False}
SPACY_ENCODE = {"width": 96, "depth": 4, "window_size": 1, "maxout_pieces": 3}
POOLING = reg.POOLING
SPAN_GETTERS = ("strided_spans.v1", "doc_spans.v1", "sent_spans.v1")


# --- the embedding ---------------------------------------------------------------------------
def translate_embedder(t: Tracker, name: str) -> tuple[dict[str, Any], str]:
    base = f"components.{name}"
    factory = t.take(f"{base}.factory")
    if factory == "tok2vec":
        width, model = translate_tok2vec(t, f"{base}.model")
        return {"factory": "tok2vec", "width": width, "model": model}, "tok2vec"
    return _transformer(t, base, factory), "transformer"


def translate_tok2vec(t: Tracker, path: str) -> tuple[int, dict[str, Any]]:
    """(width, distnlp.Tok2Vec.v1 config) from a spaCy Tok2Vec / HashEmbedCNN block."""
    arch = t.registered(f"{path}.@architectures", reg.HASH_EMBED_CNN + reg.TOK2VEC, "spacy.Tok2Vec.v2")
    if arch in reg.HASH_EMBED_CNN:
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
    if arch not in reg.TOK2VEC:
        t.note(path, f"architecture {arch!r} has no distnlp equivalent: spaCy's default Tok2Vec is used instead")
        arch = "spacy.Tok2Vec.v2"
    embed_path, encode_path = f"{path}.embed", f"{path}.encode"
    embed_arch = t.registered(f"{embed_path}.@architectures", reg.MULTI_HASH_EMBED, "spacy.MultiHashEmbed.v2")
    if embed_arch not in reg.MULTI_HASH_EMBED:
        t.note(embed_path, f"{embed_arch!r} has no distnlp equivalent: spaCy's default MultiHashEmbed is used instead")
        embed_arch = None
    encode_arch = t.get(f"{encode_path}.@architectures", "spacy.MaxoutWindowEncoder.v2")
    if encode_arch in ("spacy.MishWindowEncoder.v1", "spacy.MishWindowEncoder.v2"):
        # same width, depth and window; only the activation differs
        t.note(f"{encode_path}.@architectures", f"{encode_arch!r}: distnlp has MaxoutWindowEncoder (maxout instead of mish, same width/depth/window)")
    elif encode_arch not in reg.MAXOUT_ENCODER:
        t.note(encode_path, f"{encode_arch!r} has no distnlp equivalent: spaCy's default MaxoutWindowEncoder is used instead")
        encode_arch = None
    else:
        t.registered(f"{encode_path}.@architectures", reg.MAXOUT_ENCODER)

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


def _transformer(t: Tracker, base: str, factory: str) -> dict[str, Any]:
    """encoder=transformer settings from a spacy-transformers / curated-transformers component."""
    model_path = f"{base}.model"
    arch = str(t.get(f"{model_path}.@architectures", ""))
    # distnlp.Transformer.v1's own defaults cover what the spaCy config does not set; spaCy's
    # listeners pool with reduce_mean unless they say otherwise
    model: dict[str, Any] = {"_use_": "distnlp.Transformer.v1", "name": "${encoder.name}", "pooling": {"_use_": "distnlp.reduce_mean.v1"}}
    encoder: dict[str, Any] = {"factory": "transformer", "model": model}
    if factory == "transformer":
        if t.registered(f"{model_path}.@architectures", reg.TRANSFORMER_MODELS) not in reg.TRANSFORMER_MODELS:
            t.note(model_path, f"architecture {arch!r} is not spacy-transformers.TransformerModel: loaded as one")
        encoder["name"] = str(t.take(f"{model_path}.name", "roberta-base"))
        spans = f"{model_path}.get_spans"
        getter = str(t.registered(f"{spans}.@span_getters", reg.SPAN_GETTERS, "spacy-transformers.strided_spans.v1"))
        model["get_spans"] = _span_getter(t, spans, reg.SPAN_GETTERS.get(getter, getter))
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
        setter = t.registered(f"{base}.set_extra_annotations.@annotation_setters", reg.ANNOTATION_SETTERS,
                              "spacy-transformers.null_annotation_setter.v1")
        if setter in reg.ANNOTATION_SETTERS:
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
        if t.registered(f"{loader}.@model_loaders", reg.CURATED_LOADERS) not in (None, *reg.CURATED_LOADERS):
            t.note(loader, "distnlp loads the Hugging Face model named by its `name`")
        t.neutral(f"{loader}.revision", "main")  # distnlp loads the default revision
        if t.registered(f"{model_path}.@architectures", reg.CURATED_MODELS) not in reg.CURATED_MODELS:
            t.note(model_path, f"architecture {arch!r}: distnlp loads the Hugging Face model the encoder loader names")
        spans = f"{model_path}.with_spans"
        getter = str(t.registered(f"{spans}.@architectures", reg.CURATED_SPANS, "spacy-curated-transformers.WithStridedSpans.v1"))
        if getter in reg.CURATED_SPANS:
            model["get_spans"] = {"_use_": "distnlp.strided_spans.v1", "window": int(t.take(f"{spans}.window", 128)),
                                  "stride": int(t.take(f"{spans}.stride", 96))}
        else:
            t.note(spans, f"{getter!r}: distnlp has strided, doc and sentence spans")
        t.note(f"{model_path}.piece_encoder", "distnlp uses the model's own Hugging Face tokenizer")
        t.note(f"initialize.components.{base.split('.', 1)[1]}.piecer_loader", "distnlp uses the model's own Hugging Face tokenizer")
        for key, _ in leaves(t.block(model_path)):
            # registered names are read above (or listed): sizes and dropouts only
            if key.split(".")[0] not in ("with_spans", "piece_encoder", "mixed_precision") and not any(k.startswith("@") for k in key.split(".")):
                t.take(f"{model_path}.{key}")  # sizes and dropouts: the loaded model's own config gives them
        model["mixed_precision"] = bool(t.take(f"{model_path}.mixed_precision", False))
    return encoder


def _span_getter(t: Tracker, path: str, kind: str) -> dict[str, Any]:
    if kind == "strided_spans.v1":
        return {"_use_": "distnlp.strided_spans.v1", "window": int(t.take(f"{path}.window", 128)), "stride": int(t.take(f"{path}.stride", 96))}
    if kind == "doc_spans.v1":
        return {"_use_": "distnlp.doc_spans.v1"}
    if kind == "sent_spans.v1":
        # evaluation and raw text give docs without sentences (spaCy would stop with E030): whole docs
        return {"_use_": "distnlp.sent_spans.v1", "on_missing": "doc"}
    t.note(path, f"span getter {kind!r}: distnlp has {', '.join(SPAN_GETTERS)}; strided spans are used")
    return {"_use_": "distnlp.strided_spans.v1", "window": 128, "stride": 96}


def translate_pooling(t: Tracker, path: str, encoder: dict[str, Any]) -> None:
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
    t.registered(f"{path}.@layers", POOLING)
