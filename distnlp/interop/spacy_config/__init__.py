"""A spaCy training config (`config.cfg`) as a distnlp experiment overlay.

`translate(cfg)` maps what distnlp has an equivalent for (tok2vec or transformer embedding,
listeners or independent embeddings, `grad_factor`, the components distnlp trains, `[training]`,
`[initialize]`, `[pretraining]`) and lists every other setting with its config path and why.
Nothing is dropped silently: every leaf of the spaCy config is either used, or listed, or
empty (`null`, `[]`, `{}`: nothing to translate). Every registered-function node (a block with
an `@architectures`, `@layers`, `@readers`, ... key, at any depth) is listed by its own path and
registered name unless the translator read it at its place and maps it exactly
(`registered.EXACT`): an unknown or custom name is never silently replaced by distnlp's default.

Blocks a partial config leaves out take spaCy's defaults, as `spacy init fill-config` fills
them (the values marked "spaCy's default" in the submodules); for the embedding these are also
distnlp's own defaults (conf/encoder/tok2vec.yaml), so a missing block and spaCy's filled block
train alike. Modules: tracker (what was used), registered (the names translated exactly), embedding, components, training (with
[initialize], [corpora] and [pretraining]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..spacy_import import require_spacy
from .components import HEAD_FACTORIES, translate_component
from .embedding import translate_embedder
from .tracker import Tracker
from .training import translate_corpora, translate_initialize, translate_pretraining, translate_training


@dataclass
class Translation:
    overlay: dict[str, Any]
    # config group -> the option whose node the translated values complete (conf/GROUP/OPTION.yaml)
    bases: dict[str, str]
    untranslated: list[tuple[str, str]] = field(default_factory=list)  # (spaCy config path, why)


def load_spacy_config(path: str | Path) -> dict[str, Any]:
    """The spaCy config as plain data, `${...}` resolved (needs the `spacy` extra: thinc parses it)."""
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


def translate(cfg: dict[str, Any]) -> Translation:
    t = Tracker(cfg)
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
        encoder, kind = translate_embedder(t, first)
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
        components[name] = translate_component(t, name, HEAD_FACTORIES[factory], encoder)
        order.append(name)
    overlay["nlp"]["pipeline"] = order
    encoder.pop("pooled_by_listener", None)
    if encoder:
        overlay["encoder"] = encoder
    if components:
        overlay["components"] = components
    overlay["training"] = translate_training(t, components)
    translate_initialize(t)
    corpus = translate_corpora(t)
    if corpus:
        overlay["corpus"] = corpus
    pretrain = translate_pretraining(t, embedders[0] if embedders else None, overlay)
    if pretrain:
        overlay["pretrain"] = pretrain
    return Translation(overlay, {g: b for g, b in bases.items() if g in overlay}, t.untranslated())
