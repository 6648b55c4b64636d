"""CoNLL 2018 raw-text metrics (distnlp.scoring.conll18_raw) against counts computed by hand."""
from __future__ import annotations

from pathlib import Path

import pytest

from distnlp.data.convert.conllu import read_conllu
from distnlp.data.doc import Doc
from distnlp.errors import CorpusError, DistnlpError
from distnlp.scoring.conll18 import Conll18
from distnlp.scoring.conll18_raw import Score, evaluate_ud, raw_texts, read_ud, ud_from_docs

FIXTURES = Path(__file__).parent / "fixtures"


def _row(i: int | str, form: str, lemma: str = "_", upos: str = "_", xpos: str = "_", feats: str = "_",
         head: int | str = "_", deprel: str = "_", misc: str = "_") -> str:
    return "\t".join(str(c) for c in (i, form, lemma, upos, xpos, feats, head, deprel, "_", misc))


# Three sentences; "don't" is one token of two words. Content words (by relation): We, n't, know,
# New, York, big, Go, home (8); functional children: know <- do (aux), big <- is (cop).
GOLD = "\n".join([
    "# newdoc id = d1",
    "# newpar",
    "# sent_id = 1",
    "# text = We don't know.",
    _row(1, "We", "we", "PRON", "PRP", "Case=Nom|Number=Plur|Person=1|PronType=Prs", 4, "nsubj"),
    _row("2-3", "don't"),
    _row(2, "do", "do", "AUX", "VBP", "Mood=Ind|Tense=Pres|VerbForm=Fin", 4, "aux"),
    _row(3, "n't", "not", "PART", "RB", "Polarity=Neg", 4, "advmod"),
    _row(4, "know", "know", "VERB", "VB", "VerbForm=Inf", 0, "root", "SpaceAfter=No"),
    _row(5, ".", ".", "PUNCT", ".", "_", 4, "punct"),
    "",
    "# sent_id = 2",
    "# text = New York is big.",
    _row(1, "New", "New", "PROPN", "NNP", "Number=Sing", 2, "compound"),
    _row(2, "York", "York", "PROPN", "NNP", "Number=Sing", 4, "nsubj"),
    _row(3, "is", "be", "AUX", "VBZ", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", 4, "cop"),
    _row(4, "big", "big", "ADJ", "JJ", "Degree=Pos", 0, "root", "SpaceAfter=No"),
    _row(5, ".", ".", "PUNCT", ".", "_", 4, "punct"),
    "",
    "# newpar",
    "# sent_id = 3",
    "# text = Go home",
    _row(1, "Go", "go", "VERB", "VB", "Mood=Imp|VerbForm=Fin", 0, "root"),
    _row(2, "home", "_", "ADV", "RB", "_", 1, "advmod"),  # gold lemma "_": any lemma is right
    "",
    "",
])


def _system() -> Doc:
    """A pipeline's output on the raw text: "don't" split in two tokens, "New York" one token (with
    its space), a newline kept as a token and starting the second sentence, sentences 2 and 3 one.
    Errors: n't UPOS ADV, head do, relation aux (not a content word); know lemma "knows"; do Tense=Past; Go attached to big as
    parataxis (gold: root); home UPOS NOUN. big's extra Typo=Yes is not a universal feature."""
    rows = [  # word, space, sent start, head, dep, pos, lemma, morph
        ("We", True, True, 3, "nsubj", "PRON", "we", "Case=Nom|Number=Plur|Person=1|PronType=Prs"),
        ("do", False, False, 3, "aux", "AUX", "do", "Mood=Ind|Tense=Past|VerbForm=Fin"),
        ("n't", True, False, 1, "aux", "ADV", "not", "Polarity=Neg"),
        ("know", False, False, 3, "root", "VERB", "knows", "VerbForm=Inf"),
        (".", False, False, 3, "punct", "PUNCT", ".", ""),
        ("\n", False, True, 5, "dep", "SPACE", "\n", ""),
        ("New York", True, False, 8, "nsubj", "PROPN", "New York", "Number=Sing"),
        ("is", True, False, 8, "cop", "AUX", "be", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"),
        ("big", False, False, 8, "root", "ADJ", "big", "Degree=Pos|Typo=Yes"),
        (".", True, False, 8, "punct", "PUNCT", ".", ""),
        ("Go", True, False, 8, "parataxis", "VERB", "go", "VerbForm=Fin|Mood=Imp"),
        ("home", False, False, 10, "advmod", "NOUN", "home", ""),
    ]
    cols = list(zip(*rows))
    return Doc(words=list(cols[0]), spaces=list(cols[1]), doc_id="d1", sent_starts=list(cols[2]), heads=list(cols[3]),
               deps=list(cols[4]), pos=list(cols[5]), lemmas=list(cols[6]), morphs=list(cols[7]))


# (gold, system, correct, aligned) by hand.
# Tokens: gold We don't know . New York is big . Go home (11); system We do n't know . NewYork is
#   big . Go home (11, the newline dropped); same spans: We know . is big . Go home (8).
# Sentences: gold 3, system 2 ("New York ... home" is one); only the first has the same span.
# Words: gold 12, system 11; aligned 10: We, do, n't (by LCS inside "don't"), know, ., is, big, .,
#   Go, home; New and York have no counterpart in NewYork.
# UPOS: aligned minus n't (ADV), home (NOUN) = 8. UFeats: minus do (Tense=Past) = 9.
# Lemmas: minus know ("knows"; home's gold "_" accepts "home") = 9.
# UAS: minus n't (head do, gold know) and Go (head big, gold root) = 8; LAS the same 8.
# CLAS: gold 8 content words; system 6: We, know, NewYork, big, Go, home; aligned with a content
#   gold word (the gold relation decides): We, n't, know, big, Go, home (6); right: We, know, big,
#   home (4).
# MLAS: of those 4, know's functional child do has the wrong feats, home the wrong UPOS: We, big (2).
# BLEX: of those 4, know has the wrong lemma: We, big, home (3).
EXPECTED = {
    "Tokens": Score(11, 11, 8),
    "Sentences": Score(3, 2, 1),
    "Words": Score(12, 11, 10),
    "UPOS": Score(12, 11, 8, 10),
    "UFeats": Score(12, 11, 9, 10),
    "Lemmas": Score(12, 11, 9, 10),
    "UAS": Score(12, 11, 8, 10),
    "LAS": Score(12, 11, 8, 10),
    "CLAS": Score(8, 6, 4, 6),
    "MLAS": Score(8, 6, 2, 6),
    "BLEX": Score(8, 6, 3, 6),
}


@pytest.fixture
def gold(tmp_path: Path):
    path = tmp_path / "gold.conllu"
    path.write_text(GOLD, encoding="utf-8")
    return read_ud(path)


def test_hand_computed_counts(gold) -> None:
    scores = evaluate_ud(gold, ud_from_docs([_system()]))
    # no XPOS predicted (tags None): XPOS and AllTags are left out, not scored against "_"
    assert scores == EXPECTED
    assert scores["UAS"].f1 == pytest.approx(2 * 8 / 23)
    assert scores["UAS"].precision == pytest.approx(8 / 11) and scores["UAS"].recall == pytest.approx(8 / 12)
    assert scores["CLAS"].aligned_accuracy == pytest.approx(4 / 6) and scores["Words"].aligned_accuracy is None


def test_gold_reading(gold) -> None:
    assert gold.text == "Wedon'tknow.NewYorkisbig.Gohome"
    assert gold.tokens[:3] == [(0, 2), (2, 7), (7, 11)]  # "don't" is one token over its two words
    assert [(w.start, w.end, w.multiword) for w in gold.words[1:3]] == [(2, 7, True), (2, 7, True)]
    assert gold.sentences == [(0, 12), (12, 25), (25, 31)]
    know, big = gold.words[3], gold.words[8]
    assert know.children == [1] and big.children == [7]  # functional children: do, is
    assert gold.words[0].parent == 3 and know.parent is None


def test_parse_metrics_need_heads_and_deps(gold) -> None:
    doc = _system()
    doc.deps = None
    scores = evaluate_ud(gold, ud_from_docs([doc]))
    assert "UAS" in scores and not {"LAS", "CLAS", "MLAS", "BLEX", "XPOS", "AllTags"} & scores.keys()


def test_same_tokenization_equals_gold_tokenization_scores() -> None:
    """With the gold words as tokens, every word aligns and the word metrics are conll18.py's."""
    gold_docs, pred_docs = list(read_conllu(FIXTURES / "conll18-gold.conllu")), list(read_conllu(FIXTURES / "conll18-pred.conllu"))
    expected = Conll18().update(gold_docs, pred_docs).scores()
    scores = evaluate_ud(read_ud(FIXTURES / "conll18-gold.conllu"), ud_from_docs(pred_docs))
    assert scores["Words"] == Score(9, 9, 9) and scores["Sentences"] == Score(2, 2, 2)
    assert scores["Tokens"] == Score(8, 9, 7)  # "don't" is two predicted tokens
    assert {m: scores[m].f1 for m in expected} == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("gold, system, correct", [
    # words: "form" alone, or "token w1 w2..." for a multiword token (the official script's own cases)
    (["abc a b c"], ["a", "b", "c"], 3),
    (["abcd a b c d"], ["ab a b", "cd c d"], 4),
    (["abc a b c", "de d e"], ["a", "bcd b c d", "e"], 5),
    (["abcd"], ["a", "b", "c", "d"], 0),
    (["a", "bc", "d"], ["a", "b", "c", "d"], 2),
    (["a", "bc b c", "d"], ["a", "b", "cd"], 2),
    (["abc a BX c", "def d EX f"], ["ab a b", "cd c d", "ef e f"], 4),  # forms compared lowercased: bx != b
    (["ab a b", "cd bc d"], ["a", "bc", "d"], 2),
    (["a", "bc b c", "d"], ["ab AX BX", "cd CX a"], 1),
    (["ab A B"], ["a", "b"], 2),  # forms compared lowercased
])
def test_word_alignment(tmp_path: Path, gold: list[str], system: list[str], correct: int) -> None:
    def write(name: str, tokens: list[str]) -> Path:
        rows, n = [], 0
        for t in tokens:
            parts = t.split(" ")
            if len(parts) > 1:
                rows.append(_row(f"{n + 1}-{n + len(parts) - 1}", parts[0]))
                parts = parts[1:]
            for p in parts:
                n += 1
                rows.append(_row(n, p, head=int(n > 1), deprel="dep" if n > 1 else "root"))
        path = tmp_path / name
        path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")
        return path

    g, s = read_ud(write("g.conllu", gold)), read_ud(write("s.conllu", system))
    words = evaluate_ud(g, s)["Words"]
    assert (words.gold, words.system, words.correct) == (len(g.words), len(s.words), correct)


def test_text_mismatch_is_one_line_error(gold) -> None:
    doc = _system()
    doc.words[6] = "New Jork"
    with pytest.raises(DistnlpError) as e:
        evaluate_ud(gold, ud_from_docs([doc]))
    msg = str(e.value)
    assert "\n" not in msg and "character 15" in msg and "needs the same text" in msg
    assert "gold.conllu:12 (sentence '2')" in msg and "doc 'd1' sentence 2" in msg and "'Jorkisbig.Gohom'" in msg


def test_whitespace_only_differences_are_fine(gold) -> None:
    doc = _system()
    doc.words[3:5] = ["kn ow", "\u00a0."]  # spaces inside a token do not count
    assert evaluate_ud(gold, ud_from_docs([doc])) == EXPECTED


def test_head_on_dropped_or_outside_token_is_root(gold) -> None:
    doc = _system()
    doc.heads[10] = 5  # Go -> the dropped newline token: a root, as in the gold
    doc.heads[0] = 8  # We -> big, in another sentence: a root (gold: know)
    uas = evaluate_ud(gold, ud_from_docs([doc]))["UAS"]
    assert uas.correct == 8  # Go now right, We now wrong


@pytest.mark.parametrize("line, problem", [
    (_row(1, "We", head=0, deprel="root")[:-2], "expected 10 tab-separated columns"),
    (_row(1, "We", head=3, deprel="root"), "HEAD 3 is out of range"),
    (_row("1-2", "Wed"), "multiword token ends at word 2"),
    (_row(2, "We", head=0, deprel="root"), "word ID '2' out of sequence"),
])
def test_malformed_gold_names_the_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(f"# sent_id = 1\n{_row(1, 'Hi', head=0, deprel='root')}\n\n# sent_id = 2\n{line}\n\n", encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        read_ud(path)
    assert str(e.value).startswith(f"{path}:5: {problem}") and "\n" not in str(e.value)


def test_cycle_and_two_roots_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.conllu"
    path.write_text(f"{_row(1, 'a', head=2, deprel='dep')}\n{_row(2, 'b', head=1, deprel='dep')}\n{_row(3, 'c', head=0, deprel='root')}\n\n")
    with pytest.raises(CorpusError, match="cycle"):
        read_ud(path)
    path.write_text(f"{_row(1, 'a', head=0, deprel='root')}\n{_row(2, 'b', head=0, deprel='root')}\n\n")
    with pytest.raises(CorpusError, match="2 roots"):
        read_ud(path)


def test_raw_texts(tmp_path: Path) -> None:
    path = tmp_path / "raw.conllu"
    path.write_text("\n".join([
        GOLD.rstrip("\n"),
        "",
        "# newdoc id = d2",
        "# sent_id = 4",  # no `# text`: rebuilt from the forms, the range's SpaceAfter=No and the last token
        _row("1-2", "Can't", misc="SpaceAfter=No"),
        _row(1, "Ca", head=0, deprel="root"),
        _row(2, "n't", head=1, deprel="advmod"),
        _row(3, "!", head=1, deprel="punct"),
        _row(3.1, "x"),
        "",
        "# sent_id = 5",
        "# text = Really.",
        _row(1, "Really", head=0, deprel="root"),
        "",
        "",
    ]), encoding="utf-8")
    assert raw_texts(path) == [("d1", "We don't know. New York is big.\n\nGo home"), ("d2", "Can't! Really.")]
    # without `# newdoc`, every sentence is a document, named by its sent_id as read_conllu does
    path.write_text("\n".join(line for line in GOLD.split("\n") if not line.startswith("# newdoc")), encoding="utf-8")
    assert raw_texts(path) == [("1", "We don't know."), ("2", "New York is big."), ("3", "Go home")]
    assert [d.doc_id for d in read_conllu(path)] == ["1", "2", "3"]


def test_raw_texts_round_trip(tmp_path: Path, gold) -> None:
    """Tokenizing the raw text on whitespace gives the gold text back (whitespace removed)."""
    path = tmp_path / "g.conllu"
    path.write_text(GOLD, encoding="utf-8")
    docs = [Doc(words=text.split(), spaces=[True] * len(text.split()), doc_id=doc_id) for doc_id, text in raw_texts(path)]
    scores = evaluate_ud(gold, ud_from_docs(docs))
    assert scores["Tokens"] == Score(11, 9, 7)  # "know." and "big." are one token each
    assert scores["Sentences"] == Score(3, 1, 0) and set(scores) == {"Tokens", "Sentences", "Words"}
