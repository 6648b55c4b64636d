"""spaCy's [training], [initialize], [corpora] and [pretraining] blocks."""
from __future__ import annotations

from typing import Any

from . import registered as reg
from .components import SCORES
from .tracker import Tracker

# spaCy's [training] defaults (spacy/default_config.cfg)
SPACY_TRAINING = {"dropout": 0.1, "accumulate_gradient": 1, "patience": 1600, "max_epochs": 0, "max_steps": 20000, "eval_frequency": 200}


# --- [training], [initialize], [corpora], [pretraining] ----------------------------------------
def translate_training(t: Tracker, components: dict[str, Any]) -> dict[str, Any]:
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


def _optimizer(t: Tracker, path: str) -> dict[str, Any]:
    name = t.registered(f"{path}.@optimizers", reg.OPTIMIZERS, "Adam.v1")
    if name not in reg.OPTIMIZERS:
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


def _schedule(t: Tracker, path: str, default: float) -> Any:
    value = t.get(path, default)
    if not isinstance(value, dict):
        t.take(path)
        return float(value)
    name = t.registered(f"{path}.@schedules", reg.SCHEDULES)
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


def _batcher(t: Tracker, path: str) -> dict[str, Any]:
    name = t.registered(f"{path}.@batchers", reg.BATCHERS, "spacy.batch_by_words.v1")
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


def _score_weights(t: Tracker, components: dict[str, Any]) -> dict[str, float]:
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


def translate_initialize(t: Tracker) -> None:
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


def translate_corpora(t: Tracker) -> dict[str, Any]:
    """spaCy's .spacy paths: distnlp trains on converted corpora (`distnlp convert`). The training
    corpus's `max_length` (longer docs are split into sentences) becomes `corpus.split_length`,
    which cuts them into pieces of whole sentences up to that length (a longer sentence is kept
    whole, where spaCy drops it). Returns the `corpus` overlay."""
    corpus: dict[str, Any] = {}
    split_length = t.get("corpora.train.max_length")
    if isinstance(split_length, int) and not isinstance(split_length, bool) and split_length > 0:
        corpus["split_length"] = int(t.take("corpora.train.max_length"))
    for split in ("train", "dev"):
        path = t.get(f"corpora.{split}.path")
        reader = t.registered(f"corpora.{split}.@readers", reg.CORPUS_READERS)
        if reader not in (None, *reg.CORPUS_READERS):
            t.note(f"corpora.{split}", f"reader {reader!r}: distnlp trains on corpora converted with `distnlp convert` (spaCy's spacy.Corpus.v1 files)")
        for key, neutral in (("max_length", 0), ("gold_preproc", False), ("limit", 0), ("augmenter", None)):
            if not (split == "train" and key == "max_length" and corpus):
                t.neutral(f"corpora.{split}.{key}", neutral)
        if path:
            t.note(f"corpora.{split}.path", f"{path!r}: run `distnlp convert {path} DIR` and set corpus.{split}=DIR")
    for key in ("train", "dev"):
        t.take(f"paths.{key}")
    return corpus


def translate_pretraining(t: Tracker, embedder: str | None, overlay: dict[str, Any]) -> dict[str, Any]:
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
        name = t.registered(f"{corpus}.@readers", reg.RAW_TEXT_READERS)
        if name not in (None, *reg.RAW_TEXT_READERS):
            t.note(corpus, f"reader {name!r}: distnlp reads raw text as spacy.JsonlCorpus.v1 does; its path is used")
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
        arch = t.registered("pretraining.objective.@architectures", reg.OBJECTIVES)
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
