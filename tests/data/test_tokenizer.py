"""Tokenizer: exact round trip for any string, and English conventions on targeted cases."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp.data.tokenizer import Tokenizer

TOK = Tokenizer()


def _words(text: str) -> list[str]:
    return [w for w in TOK.tokenize(text)[0] if not w.isspace()]


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=80)
    | st.text(alphabet=" \t\n\r\u00a0\u2003'\"`’“”.,;:!?()[]{}$%#@*=_<>/-—…abcXYZ019é漢😀", max_size=60)
)
def test_round_trip_any_text(text: str) -> None:
    words, spaces = TOK.tokenize(text)
    assert "".join(w + (" " if s else "") for w, s in zip(words, spaces)) == text
    assert all(words), "no empty tokens"
    assert TOK(text).text == text


@pytest.mark.parametrize(
    "text, words, spaces",
    [
        ("a b", ["a", "b"], [True, False]),
        ("a  b", ["a", " ", "b"], [True, False, False]),
        (" a", [" ", "a"], [False, False]),
        ("a\nb", ["a", "\n", "b"], [False, False, False]),
        ("a \n b", ["a", "\n ", "b"], [True, False, False]),
        ("a\t", ["a", "\t"], [False, False]),
        ("", [], []),
    ],
)
def test_whitespace_like_spacy(text: str, words: list[str], spaces: list[bool]) -> None:
    assert TOK.tokenize(text) == (words, spaces)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, world!", "Hello , world !"),
        ("I don't know.", "I do n't know ."),
        ("can't won't shouldn't", "ca n't wo n't should n't"),
        ("I'm sure it's fine; we'll see, they've said", "I 'm sure it 's fine ; we 'll see , they 've said"),
        ("John's dogs' bowls", "John 's dogs ' bowls"),
        ('"Quoted," he said... "Really?!"', '" Quoted , " he said ... " Really ?! "'),
        ("(see [1]).", "( see [ 1 ] ) ."),
        ("wait...what", "wait ... what"),
        ("al-Ani", "al - Ani"),
        ("Visit https://example.com/a?b=1. Or www.google.com, or mail me@x.org!",
         "Visit https://example.com/a?b=1 . Or www.google.com , or mail me@x.org !"),
        ("It costs $5.99 for 1,000 items, 10% off, pi is 3.14.", "It costs $ 5.99 for 1,000 items , 10% off , pi is 3.14 ."),
        ("The U.S. and e.g. Mr. Smith etc. went to Washington.", "The U.S. and e.g. Mr. Smith etc. went to Washington ."),
        ("gonna dont cannot", "gon na do nt can not"),
        ("==== end ====", "==== end ===="),
    ],
)
def test_english_conventions(text: str, expected: str) -> None:
    assert _words(text) == expected.split()


def test_call_returns_unannotated_doc() -> None:
    doc = TOK("Hi there.")
    assert doc.words == ["Hi", "there", "."] and doc.spaces == [True, False, False]
    assert doc.tags is None and doc.ent_spans is None
