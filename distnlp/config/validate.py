"""Check a composed config before any work starts.

Every problem is a `ConfigError` reading `<dotted.path>: <problem> (<fix>)`: missing values,
unknown keys (with the closest valid names), wrong types, unknown registered names or arguments,
and a listener whose upstream embedding component does not exist.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import registry
from ..errors import ConfigError, did_you_mean
from .settings import DistributedSettings
from . import schema
from .corpora import check_corpus_section

SHARED_EMBEDDING = "encoder"


def validate_config(config: Mapping[str, Any]) -> None:
    registry.import_code(config.get("code"))
    _check_mapping(config, schema.TOP_LEVEL, "")
    _check_encoder(config.get("encoder"))
    _check_components(config)
    if isinstance(config.get("corpus"), Mapping):
        check_corpus_section(config["corpus"])
    dist = config.get("distributed")
    if isinstance(dist, Mapping):
        backend = dist.get("backend", "single")
        specs = {"single": schema.DISTRIBUTED_SINGLE, "ray": schema.DISTRIBUTED_RAY}
        if backend not in specs:
            raise ConfigError("distributed.backend", f"unknown backend {backend!r}", "use distributed=single or distributed=ray")
        _check_mapping(dist, specs[backend], "distributed")
        DistributedSettings.from_config(config)  # num_workers: N or MIN..MAX, and the rest of its checks


def _check_encoder(encoder: Any) -> None:
    if encoder is None:
        return
    if not isinstance(encoder, Mapping):
        raise ConfigError("encoder", f"expected a mapping, got {type(encoder).__name__}", "pick one with encoder=tok2vec")
    for key in ("factory", "model"):
        if key not in encoder:
            raise ConfigError(f"encoder.{key}", "missing", "every encoder config sets factory and model")
    for key, value in encoder.items():
        if key in schema.ENCODER_COMMON:
            _check_value(value, schema.ENCODER_COMMON[key], f"encoder.{key}")


def _check_components(config: Mapping[str, Any]) -> None:
    components = config.get("components") or {}
    if not isinstance(components, Mapping):
        raise ConfigError("components", "expected a mapping of component name -> settings", "see conf/pipeline/shared.yaml")
    order = (config.get("nlp") or {}).get("pipeline") or []
    for name in order:
        if name not in components:
            raise ConfigError("nlp.pipeline", f"component {name!r} has no settings under components", did_you_mean(str(name), components))
    has_encoder = config.get("encoder") is not None
    for name, comp in components.items():
        path = f"components.{name}"
        if not isinstance(comp, Mapping):
            raise ConfigError(path, "expected a mapping", "see conf/pipeline/shared.yaml")
        factory = comp.get("factory")
        if not isinstance(factory, str):
            raise ConfigError(f"{path}.factory", "missing", "name a registered component, e.g. factory: tagger")
        # the class registered under it (a lookup: a user's component comes from code=)
        allowed = {**schema.COMPONENT_COMMON, **registry.components.get(factory, f"{path}.factory").config_keys}
        _check_mapping(comp, allowed, path)
        if factory == "lemmatizer":
            _check_lemmatizer(comp, path)
        if "model" not in comp:
            raise ConfigError(f"{path}.model", "missing", "set the head architecture, e.g. {_use_: distnlp.TaggerHead.v1}")
        listen = comp.get("listen")
        if listen is not None:
            if listen != SHARED_EMBEDDING or not has_encoder:
                raise ConfigError(
                    f"{path}.listen",
                    f"no embedding component {listen!r} to listen to",
                    f"use listen: {SHARED_EMBEDDING} (and an encoder config), or listen: null with an embed: for an independent embedding",
                )
        elif not comp.get("embed"):
            raise ConfigError(f"{path}.embed", "an independent component (listen: null) needs its own embed", "set embed: ${encoder.model} or listen: encoder")


def _check_lemmatizer(comp: Mapping[str, Any], path: str) -> None:
    if comp.get("backoff", "orth") not in ("orth", "lower", None):
        raise ConfigError(f"{path}.backoff", f"unknown backoff {comp['backoff']!r}", "use orth (the form), lower or null (no lemma)")
    for key in ("top_k", "min_tree_freq"):
        if int(comp.get(key, 1)) < 1:
            raise ConfigError(f"{path}.{key}", f"must be at least 1, not {comp[key]}", "spaCy's defaults: top_k 1, min_tree_freq 3")


def _check_mapping(node: Any, spec: Mapping[str, Any], path: str) -> None:
    if not isinstance(node, Mapping):
        raise ConfigError(path, f"expected a mapping, got {type(node).__name__}", "check the config structure")
    for key, value in node.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in spec:
            raise ConfigError(sub, "unknown key", did_you_mean(str(key), spec))
        _check_value(value, spec[key], sub)


def _check_value(value: Any, spec: Any, path: str) -> None:
    if value == "???":
        raise ConfigError(path, "value is missing (???)", f"set it: {path}=VALUE")
    if spec is schema.ANY:
        return
    if spec is schema.REF:
        check_reference(value, path)
        return
    if spec is schema.SCHEDULE:
        if isinstance(value, Mapping):
            check_reference(value, path)
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(path, f"expected a number or a schedule, got {value!r}", "e.g. 1.0 or {_use_: distnlp.warmup_linear.v1, ...}")
        return
    if isinstance(spec, Mapping):
        _check_mapping(value, spec, path)
        return
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(path, f"expected {_names(types)}, got a bool ({value})", "fix the value's type")
    if isinstance(value, int) and float in types and int not in types:
        return
    if not isinstance(value, types):
        raise ConfigError(path, f"expected {_names(types)}, got {type(value).__name__} ({value!r})", "fix the value's type")


def check_reference(node: Any, path: str) -> None:
    """A `_use_` node: the name is registered and the arguments match its signature."""
    if not isinstance(node, Mapping) or registry.USE_KEY not in node:
        raise ConfigError(path, "expected a registered callable {_use_: name, ...}", "see conf/ for examples")
    _, fn = registry.find(str(node[registry.USE_KEY]), f"{path}.{registry.USE_KEY}")
    registry.check_arguments(fn, {k: v for k, v in node.items() if k != registry.USE_KEY}, path, str(node[registry.USE_KEY]))
    for key, value in node.items():
        if isinstance(value, Mapping) and registry.USE_KEY in value:
            check_reference(value, f"{path}.{key}")


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)
