"""Translating a spaCy config never drops a registered function silently: every `@registry` node
(`@architectures`, `@layers`, `@readers`, `@schedules`, ...) that the translation does not map
exactly is in the report (`Translation.untranslated`) with its config path and registered name.

The nodes are found by walking the shipped configs, so a node added to a config is covered."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("spacy")

from distnlp.interop import spacy_config  # noqa: E402  (translate read at call time: the old code can stand in)
from distnlp.interop.spacy_config.registered import EXACT  # noqa: E402
from tests.interop.test_spacy_config import UNTRANSLATABLE  # noqa: E402

CONFIGS = Path(__file__).parent / "spacy_configs"
UNKNOWN = "custom.Unknown.v1"


def registered_nodes(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(config path, registry, name) of every block with an `@registry` key, at any depth."""
    for key, value in node.items():
        if key.startswith("@"):
            yield prefix, key, value
        elif isinstance(value, dict):
            yield from registered_nodes(value, f"{prefix}.{key}" if prefix else key)


def _load(name: str) -> dict[str, Any]:
    if name == "untranslatable":  # test_spacy_config's config of settings without an equivalent
        from thinc.api import Config

        return spacy_config._plain(dict(Config().from_str(UNTRANSLATABLE, interpolate=True)))
    return spacy_config.load_spacy_config(CONFIGS / f"{name}.cfg")


NAMES = [*sorted(p.stem for p in CONFIGS.glob("*.cfg")), "untranslatable"]
LOADED = {name: _load(name) for name in NAMES}
NODES = [(name, path, registry) for name in NAMES for path, registry, _ in registered_nodes(LOADED[name])]


def _listed(cfg: dict[str, Any]) -> dict[str, str]:
    return dict(reversed(spacy_config.translate(cfg).untranslated))  # path -> why (the first one)


def _set(cfg: dict[str, Any], path: str, registry: str, name: str) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    node = cfg
    for part in path.split("."):
        if not isinstance(node.get(part), dict):  # e.g. `before_to_disk = null`: a registered function now
            node[part] = {}
        node = node[part]
    node[registry] = name
    return cfg


def test_the_shipped_configs_have_registered_nodes_of_many_registries() -> None:
    registries = {registry for _, _, registry in NODES}
    assert len(NODES) > 100 and {"@architectures", "@layers", "@readers", "@schedules", "@optimizers", "@batchers",
                                 "@loggers", "@scorers", "@tokenizers", "@span_getters", "@model_loaders"} <= registries


@pytest.mark.parametrize("name,path,registry", NODES, ids=[f"{n}:{p}.{r}" for n, p, r in NODES])
def test_an_unknown_registered_function_is_listed_with_its_path(name: str, path: str, registry: str) -> None:
    listed = _listed(_set(LOADED[name], path, registry, UNKNOWN))
    assert path in listed, f"{path} ({registry} = {UNKNOWN!r}) is not in the report: {sorted(listed)}"
    assert UNKNOWN in listed[path]


@pytest.mark.parametrize("name", NAMES)
def test_only_the_registered_functions_translated_exactly_are_left_out_of_the_report(name: str) -> None:
    """The shipped configs as they are: the nodes the table names are all read where they stand
    (not listed); every other one is listed, with its name."""
    listed = _listed(LOADED[name])
    for path, registry, value in registered_nodes(LOADED[name]):
        if (registry, value) in EXACT:
            assert path not in listed, f"{path}: {listed.get(path)}"
        else:
            assert path in listed and str(value) in listed[path], path


@pytest.mark.parametrize("path,registry,value", [
    ("components.ner.model.tok2vec", "@architectures", "spacy.Tagger.v2"),  # known, but not an embedding
    ("components.tok2vec.model", "@architectures", "spacy.Tok2VecListener.v1"),  # a listener as the embedding
    ("components.tagger.model", "@architectures", "spacy.TransitionBasedParser.v2"),
    ("components.ner.model", "@architectures", "spacy.Tagger.v2"),  # a tagger model under the ner
    ("components.tagger.scorer", "@scorers", "spacy.ner_scorer.v1"),  # another component's scorer
    ("corpora.extra", "@readers", "spacy.Corpus.v1"),  # nothing reads corpora.extra
    ("training.before_to_disk", "@misc", "spacy.models_with_nvtx_range.v1"),
    ("training.before_update", "@callbacks", "spacy.copy_from_base_model.v1"),
    ("nlp.before_creation", "@callbacks", "spacy.copy_from_base_model.v1"),
    ("training.batcher.get_length", "@misc", "custom.length.v1"),
])
def test_a_known_name_where_the_translation_does_not_read_it_is_listed(path: str, registry: str, value: str) -> None:
    listed = _listed(_set(LOADED["init_tagger_parser_ner_cpu"], path, registry, value))
    assert path in listed and value in listed[path], sorted(listed)
