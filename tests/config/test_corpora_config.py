"""`corpus.train` as a list of corpora: the entries, names, weights, temperature and dev sets,
and one-line errors naming the key (`corpus.train[1].weight`) and the fix."""
from __future__ import annotations

from typing import Any

import pytest

from distnlp.cli.compose import compose_config
from distnlp.config import validate_config
from distnlp.config.corpora import CorpusEntry, train_entries
from distnlp.config.paths import absolute_paths
from distnlp.errors import ConfigError
from distnlp.config.settings import CorpusSettings


def test_one_path_and_a_list() -> None:
    assert train_entries("corpus/ewt-train/") == [CorpusEntry("ewt-train", "corpus/ewt-train/")]
    assert train_entries(["s3://bucket/ud/ewt", {"name": "b", "path": "b77", "dev": "b77-dev"}]) == [
        CorpusEntry("ewt", "s3://bucket/ud/ewt"), CorpusEntry("b", "b77", "b77-dev")]
    assert train_entries(None) == []


@pytest.mark.parametrize(
    ("train", "key", "words"),
    [
        (["a", "x/a"], "corpus.train[1].name", "duplicate corpus name 'a'"),
        ([{"path": "a", "weight": 1}, {"path": "b"}], "corpus.train[1].weight", "missing while other corpora set one"),
        ([{"path": "a", "weight": 0}, {"path": "b", "weight": 1}], "corpus.train[0].weight", "positive"),
        ([{"path": "a", "weight": "high"}], "corpus.train[0].weight", "expected a number"),
        ([{"path": "a", "wieght": 1}], "corpus.train[0].wieght", "did you mean 'weight'"),
        ([{"name": "a"}], "corpus.train[0].path", "missing"),
        ([{"path": "a", "name": "a/b"}], "corpus.train[0].name", "without '/'"),
        ([{"path": "a", "dev": 3}], "corpus.train[0].dev", "expected a directory"),
        ([3], "corpus.train[0]", "expected a path or a mapping"),
        ([], "corpus.train", "empty"),
    ],
)
def test_bad_entries_are_one_line_errors(train: Any, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        CorpusSettings.from_config({"corpus": {"train": train}})
    message = str(err.value)
    assert message.startswith(f"{key}: ") and words in message and "(" in message and "\n" not in message, message


def test_temperature_and_dev() -> None:
    for bad in (-1, "warm", True):
        with pytest.raises(ConfigError, match=r"^corpus.temperature: expected a number >= 0"):
            CorpusSettings.from_config({"corpus": {"train": "a", "temperature": bad}})
    with pytest.raises(ConfigError, match=r"^corpus.dev: set, and corpus.train\[1\].dev too"):
        CorpusSettings.from_config({"corpus": {"train": ["a", {"path": "b", "dev": "b-dev"}], "dev": "d"}})
    both = CorpusSettings.from_config({"corpus": {"train": [{"path": "a", "dev": "a-dev"}, "b"], "temperature": 0.5}})
    assert both.dev_sets() == [("a", "a-dev", "corpus.train[0].dev")] and both.temperature == 0.5
    one = CorpusSettings.from_config({"corpus": {"train": "a", "dev": "d"}})
    assert one.dev_sets() == [(None, "d", "corpus.dev")] and one.required("train") == "a"


def test_shipped_two_corpus_config_composes_and_validates() -> None:
    config = compose_config(["corpus=ewt_banking77"])
    validate_config(config)
    entries = CorpusSettings.from_config(config).train_corpora()
    assert [e.name for e in entries] == ["ewt", "banking77"] and all(e.dev for e in entries)
    with pytest.raises(ConfigError, match=r"^corpus.train\[1\].weight: expected a number"):
        validate_config(compose_config(["corpus=ewt_banking77", "corpus.train=[{path: a, weight: 1}, {path: b, weight: heavy}]"]))


def test_entries_paths_are_made_absolute() -> None:
    config = absolute_paths({"corpus": {"train": ["rel/a", {"path": "rel/b", "dev": "rel/b-dev", "weight": 1}]}})
    a, b = config["corpus"]["train"]
    assert a.startswith("/") and b["path"].startswith("/") and b["dev"].startswith("/") and b["weight"] == 1
