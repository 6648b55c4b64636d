"""`corpus.train` as one path or a list of corpora: plain-data parsing and checks.

An entry is a path, or a mapping {name, path, dev, weight}. Names default to the directory name
and must be unique: they tag every training doc, prefix the per-corpus scores (`ewt/tag_acc`)
and key each corpus's cursor in checkpoints. Weights are all given or none (then
`corpus.temperature` sets them from the corpora's sizes, data/mixture.py).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, did_you_mean

ENTRY_KEYS = ("name", "path", "dev", "weight")
KEY = "corpus.train"


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    path: str
    dev: str | None = None
    weight: float | None = None


def default_name(path: str) -> str:
    """The directory's name: `corpus/ewt-train/` -> `ewt-train` (URIs too)."""
    return str(path).rstrip("/").rsplit("/", 1)[-1] or str(path)


def train_entries(value: Any) -> list[CorpusEntry]:
    """`corpus.train` -> its corpora ([] when unset). Every problem is a one-line ConfigError."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [CorpusEntry(default_name(value), value)]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(KEY, f"expected a path or a list of corpora, got {type(value).__name__}",
                          "e.g. corpus.train=DIR, or a list of DIR / {name, path, dev, weight} entries")
    if not value:
        raise ConfigError(KEY, "the list of corpora is empty", "list at least one converted corpus directory")
    entries = [_entry(item, f"{KEY}[{i}]") for i, item in enumerate(value)]
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.name in seen:
            raise ConfigError(f"{KEY}[{i}].name", f"duplicate corpus name {entry.name!r} (also {KEY}[{seen[entry.name]}])",
                              "give each corpus its own name: {name: NAME, path: DIR}")
        seen[entry.name] = i
    weighted = [e.weight is not None for e in entries]
    if any(weighted) and not all(weighted):
        i = weighted.index(False)
        raise ConfigError(f"{KEY}[{i}].weight", "missing while other corpora set one",
                          "give every corpus a weight, or none and set corpus.temperature")
    return entries


def _entry(item: Any, path: str) -> CorpusEntry:
    if isinstance(item, str):
        if not item:
            raise ConfigError(path, "empty path", "give a converted corpus directory")
        return CorpusEntry(default_name(item), item)
    if not isinstance(item, Mapping):
        raise ConfigError(path, f"expected a path or a mapping, got {type(item).__name__}", "e.g. {name: ewt, path: corpus/ewt-train}")
    for key in item:
        if key not in ENTRY_KEYS:
            raise ConfigError(f"{path}.{key}", "unknown key", did_you_mean(str(key), ENTRY_KEYS))
    corpus = item.get("path")
    if not isinstance(corpus, str) or not corpus:
        raise ConfigError(f"{path}.path", "missing" if corpus is None else f"expected a directory, got {corpus!r}",
                          "set it to a converted corpus directory (distnlp convert)")
    name = item.get("name")
    if name is None:
        name = default_name(corpus)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"{path}.name", f"expected a name without '/', got {name!r}", "e.g. name: ewt (it prefixes the scores: ewt/tag_acc)")
    dev = item.get("dev")
    if dev is not None and (not isinstance(dev, str) or not dev):
        raise ConfigError(f"{path}.dev", f"expected a directory, got {dev!r}", "set it to this corpus's converted dev set, or leave it out")
    return CorpusEntry(name, corpus, dev, _weight(item.get("weight"), f"{path}.weight"))


def _weight(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, f"expected a number, got {value!r}", "e.g. weight: 0.5 (weights are normalised to sum to 1)")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(path, f"must be a positive number, got {value}", "leave the corpus out instead of weight 0")
    return float(value)


def check_temperature(value: Any, path: str = "corpus.temperature") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(path, f"expected a number >= 0, got {value!r}", "1.0 = proportional to the corpora's sizes, 0 = uniform, 0.5 = in between")
    return float(value)


def check_corpus_section(node: Mapping[str, Any]) -> list[CorpusEntry]:
    """The checks of `corpus.*` beyond types: entries, temperature, dev, the shuffle window."""
    entries = train_entries(node.get("train"))
    words = node.get("shuffle_words")
    if isinstance(words, int) and not isinstance(words, bool) and words < 0:
        raise ConfigError("corpus.shuffle_words", f"must be >= 0, got {words}", "0 turns the shuffle window off")
    if "temperature" in node and node["temperature"] is not None:
        check_temperature(node["temperature"])
    if node.get("dev") and any(e.dev for e in entries):
        i = next(i for i, e in enumerate(entries) if e.dev)
        raise ConfigError("corpus.dev", f"set, and {KEY}[{i}].dev too",
                          "give the dev sets per corpus (scored per corpus and combined) or one corpus.dev, not both")
    return entries
