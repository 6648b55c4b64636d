"""Edit trees: every (form, lemma) pair's tree gives back its lemma; trees generalise over the
kept parts and refuse forms they do not fit."""
from __future__ import annotations

import json

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.stream import read_docs
from distnlp.lemma.edit_trees import apply_tree, count_trees, parse_tree, tree_for


def test_every_demo_train_pair_round_trips() -> None:
    pairs = {(f, l) for d in read_docs(DEMO_DATA / "train") if d.lemmas for f, l in zip(d.words, d.lemmas) if l is not None}
    assert len(pairs) > 1000
    bad = [(f, l) for f, l in pairs if apply_tree(tree_for(f, l), f) != l]
    assert not bad, bad[:10]


@pytest.mark.parametrize(
    ("form", "lemma"),
    [
        ("cats", "cat"),  # suffix
        ("unhappy", "happy"),  # prefix
        ("geschlafen", "schlafen"),  # prefix removed
        ("gesprochen", "sprechen"),  # infix change
        ("went", "go"),  # nothing shared: one substitution
        ("dog", "dog"),  # identity
        ("The", "the"),  # capitalisation
        ("USA", "usa"),
        ("n't", "not"),
        ("a", "b"),
        ("x", ""),
        ("", "y"),
        ("ééé", "é"),
    ],
)
def test_hand_cases_round_trip(form: str, lemma: str) -> None:
    tree = tree_for(form, lemma)
    assert apply_tree(tree, form) == lemma
    assert parse_tree(tree) is not None or (form, lemma) == ("", "")


def test_trees_generalise_over_the_kept_parts() -> None:
    assert tree_for("cats", "cat") == tree_for("dogs", "dog")  # the letters kept are not in the tree
    assert apply_tree(tree_for("cats", "cat"), "houses") == "house"
    assert apply_tree(tree_for("The", "the"), "This") == "this"
    assert apply_tree(tree_for("studies", "study"), "flies") == "fly"
    assert apply_tree(tree_for("gesprochen", "sprechen"), "gestrochen") == "strechen"  # infix: o -> e


def test_trees_refuse_forms_they_do_not_fit() -> None:
    assert apply_tree(tree_for("studies", "study"), "cats") is None  # no "ies" suffix
    assert apply_tree(tree_for("went", "go"), "sent") is None  # a substitution needs its exact string
    assert apply_tree(tree_for("cats", "cat"), "s") is None  # the kept middle part cannot be empty
    assert apply_tree(tree_for("The", "the"), "the") is None


def test_identity_and_counts() -> None:
    ident = tree_for("dog", "dog")
    assert apply_tree(ident, "anything") == "anything"
    counts = count_trees([("cats", "cat"), ("dogs", "dog"), ("went", "go"), ("x", None)])
    assert counts[tree_for("cats", "cat")] == 2 and sum(counts.values()) == 3


def test_identity_shortcut_is_the_searched_tree() -> None:
    """tree_for returns the identity string without the substring search: the same string."""
    from distnlp.lemma.edit_trees import _build, _to_json

    for word in ("a", "dog", "Ünïcode", "x y", "\"q\""):
        assert tree_for(word, word) == json.dumps(_to_json(_build(word, word)), ensure_ascii=False, separators=(",", ":"))
    assert tree_for("", "") == "null" and tree_for("", "x") == '["s","","x"]'  # the empty form still searched


def test_canonical_string_is_stable() -> None:
    assert tree_for("cats", "cat") == '["m",0,1,null,["s","s",""]]'
    with pytest.raises(ValueError, match="not an edit tree"):
        parse_tree('["q",1]')
