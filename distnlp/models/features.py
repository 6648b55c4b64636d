"""Lexical attributes (spaCy's ORTH, LOWER, NORM, PREFIX, SUFFIX, SHAPE) and their hashed keys.

Keys are 64-bit blake2b hashes of the attribute strings, so they are identical in every process
and on every machine (Python's `hash()` is salted per process). The `Featurizer` caches
word -> row of keys, so a batch of Docs becomes an int64 array with one dict lookup per token.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from itertools import chain

import numpy as np

from ..data.doc import Doc
from ..errors import ConfigError, did_you_mean

__all__ = [
    "ATTRS",
    "Featurizer",
    "attr_getter",
    "hash_string",
    "lower",
    "norm",
    "orth",
    "prefix",
    "shape",
    "suffix",
]


def orth(text: str) -> str:
    return text


def lower(text: str) -> str:
    return text.lower()


def norm(text: str) -> str:
    # spaCy's NORM is the lowercase form unless a language's norm exceptions say otherwise;
    # we do not ship the exception tables.
    return text.lower()


def prefix(text: str) -> str:
    return text[:1]


def suffix(text: str) -> str:
    return text[-3:]


def shape(text: str) -> str:
    """spaCy's word shape: X for upper, x for lower, d for digits, other chars kept; runs capped at 4."""
    if len(text) >= 100:
        return "LONG"
    out: list[str] = []
    last = ""
    seq = 0
    for char in text:
        if char.isalpha():
            shape_char = "X" if char.isupper() else "x"
        elif char.isdigit():
            shape_char = "d"
        else:
            shape_char = char
        if shape_char == last:
            seq += 1
        else:
            seq = 0
            last = shape_char
        if seq < 4:
            out.append(shape_char)
    return "".join(out)


ATTRS: dict[str, Callable[[str], str]] = {
    "ORTH": orth,
    "LOWER": lower,
    "NORM": norm,
    "PREFIX": prefix,
    "SUFFIX": suffix,
    "SHAPE": shape,
}


def attr_getter(name: str, path: str = "attrs") -> Callable[[str], str]:
    """The string function of a lexical attribute (case-insensitive name)."""
    key = str(name).upper()
    if key not in ATTRS:
        raise ConfigError(path, f"unknown lexical attribute {name!r}", did_you_mean(key, ATTRS))
    return ATTRS[key]


_HASHES: dict[str, int] = {}
_MAX_HASH_CACHE = 2_000_000


def hash_string(text: str) -> int:
    """A signed 64-bit key for a string, stable across processes, machines and Python versions."""
    key = _HASHES.get(text)
    if key is None:
        digest = hashlib.blake2b(text.encode("utf8", "surrogatepass"), digest_size=8).digest()
        key = int.from_bytes(digest, "little", signed=True)
        if len(_HASHES) >= _MAX_HASH_CACHE:  # bound memory on endless vocabularies
            _HASHES.clear()
        _HASHES[text] = key
    return key


class Featurizer:
    """Docs -> int64 keys [n_tokens_total, n_attrs], concatenated over docs in order.

    Each distinct word string is computed once: it gets a row in a growing key table, and a
    batch is one dict lookup per token plus one numpy gather.
    """

    def __init__(self, attrs: Sequence[str], max_cache: int = 1_000_000) -> None:
        self.attrs = tuple(str(a).upper() for a in attrs)
        self._getters = tuple(attr_getter(a, f"attrs[{i}]") for i, a in enumerate(attrs))
        self.max_cache = int(max_cache)
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[str, int] = {}
        self._table = np.zeros((1024, len(self.attrs)), dtype=np.int64)

    def word_keys(self, word: str) -> tuple[int, ...]:
        return tuple(hash_string(get(word)) for get in self._getters)

    def _add(self, words: Iterable[str]) -> None:
        new = [w for w in dict.fromkeys(words) if w not in self._ids]
        if len(self._ids) + len(new) > self.max_cache:
            self._reset()  # a long run over an open vocabulary: start the cache over
            new = list(dict.fromkeys(words))
        n = len(self._ids)
        need = n + len(new)
        if need > len(self._table):
            grown = np.zeros((max(need, 2 * len(self._table)), len(self.attrs)), dtype=np.int64)
            grown[:n] = self._table[:n]
            self._table = grown
        for i, w in enumerate(new, start=n):
            self._table[i] = self.word_keys(w)
            self._ids[w] = i

    def words(self, words: Sequence[str]) -> np.ndarray:
        """Keys of a flat word list: int64 [len(words), n_attrs]."""
        n = len(words)
        try:
            idx = np.fromiter(map(self._ids.__getitem__, words), dtype=np.int64, count=n)
        except KeyError:
            self._add(words)
            idx = np.fromiter(map(self._ids.__getitem__, words), dtype=np.int64, count=n)
        return self._table[idx]

    def __call__(self, docs: Sequence[Doc]) -> np.ndarray:
        return self.words(list(chain.from_iterable(doc.words for doc in docs)))
