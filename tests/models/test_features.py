"""Lexical attributes and hashed keys (distnlp.models.features)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp.data.doc import Doc
from distnlp.errors import ConfigError
from distnlp.models.features import Featurizer, attr_getter, hash_string, prefix, shape, suffix


def _doc(words: list[str]) -> Doc:
    return Doc(words=words, spaces=[True] * len(words))


@pytest.mark.parametrize(
    "word, expected",
    [
        ("Hello", "Xxxxx"),
        ("apples", "xxxx"),
        ("2024", "dddd"),
        ("1,000,000", "d,ddd,ddd"),
        ("U.S.A.", "X.X.X."),
        ("C3PO", "XdXX"),
        ("", ""),
        ("McDonald's", "XxXxxxx'x"),
        ("x" * 100, "LONG"),
    ],
)
def test_shape_matches_spacy(word: str, expected: str) -> None:
    assert shape(word) == expected


def test_prefix_suffix_norm() -> None:
    assert prefix("Hello") == "H" and suffix("Hello") == "llo" and suffix("a") == "a"
    assert attr_getter("norm")("HeLLo") == "hello"
    assert attr_getter("ORTH")("HeLLo") == "HeLLo"


def test_unknown_attr_names_it() -> None:
    with pytest.raises(ConfigError, match="NORMM|unknown lexical attribute"):
        Featurizer(["NORM", "NORMM"])


def test_hash_is_64_bit_and_distinct() -> None:
    keys = {hash_string(w) for w in ["a", "b", "A", "the", "The", ""]}
    assert len(keys) == 6
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_hash_is_stable_across_processes() -> None:
    words = ["hello", "World", "ünïcödé", "😀", ""]
    code = "from distnlp.models.features import hash_string as h; print([h(w) for w in %r])" % (words,)
    outs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=Path(__file__).resolve().parents[2]).stdout.strip()
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1] == str([hash_string(w) for w in words])


def test_featurizer_concatenates_docs_in_order() -> None:
    f = Featurizer(["NORM", "PREFIX", "SUFFIX", "SHAPE"])
    docs = [_doc(["Hello", "world"]), _doc([]), _doc(["hello", "42"])]
    keys = f(docs)
    assert keys.shape == (4, 4) and keys.dtype == np.int64
    assert keys[0, 0] == keys[2, 0] == hash_string("hello")  # NORM equal
    assert keys[0, 1] != keys[2, 1]  # PREFIX H vs h
    assert keys[3, 3] == hash_string("dd")
    assert keys[1].tolist() == [hash_string(s) for s in ("world", "w", "rld", "xxxx")]


def test_featurizer_cache_reset_keeps_results() -> None:
    f = Featurizer(["ORTH", "SHAPE"], max_cache=3)
    words = ["a", "b", "c", "d", "e", "a"]
    assert f.words(words).tolist() == Featurizer(["ORTH", "SHAPE"]).words(words).tolist()
    assert f.words(["e", "zz"]).tolist() == [list(f.word_keys("e")), list(f.word_keys("zz"))]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), max_size=30))
def test_featurizer_matches_per_word(words: list[str]) -> None:
    f = Featurizer(["LOWER", "PREFIX", "SUFFIX", "SHAPE"])
    keys = f.words(words)
    assert keys.shape == (len(words), 4)
    for w, row in zip(words, keys.tolist()):
        assert tuple(row) == f.word_keys(w)
