"""CoNLL 2018 metrics against values computed by hand on tests/fixtures/conll18-{gold,pred}.conllu.

9 words. Errors in the prediction: cats lemma "cats"; do Tense=Past (UFeats, and MLAS of its
head sleep through its functional child); n't head 3; sleep has an extra Typo=Yes (not a
universal feature: no error); Dogs UPOS PROPN, deprel nsubj:pass (subtype ignored: no error);
bark XPOS VB; loudly deprel obl, lemma "loud" where the gold lemma is "_" (counted right).
Content words: gold cats, n't, sleep, Dogs, bark, loudly (6); system the same 6 (obl is one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from distnlp.data.convert.conllu import read_conllu
from distnlp.scoring.conll18 import Conll18

FIXTURES = Path(__file__).parent / "fixtures"

EXPECTED = {
    "UPOS": 8 / 9,  # Dogs
    "XPOS": 8 / 9,  # bark
    "UFeats": 8 / 9,  # do
    "AllTags": 6 / 9,  # do, Dogs, bark
    "Lemmas": 8 / 9,  # cats (loudly's gold "_" matches anything)
    "UAS": 8 / 9,  # n't
    "LAS": 7 / 9,  # n't, loudly
    "CLAS": 2 * 4 / (6 + 6),  # right: cats, sleep, Dogs, bark
    "MLAS": 2 * 2 / (6 + 6),  # right: cats (with its det The), bark; sleep's child do has wrong feats
    "BLEX": 2 * 3 / (6 + 6),  # right: sleep, Dogs, bark
}


def _docs(name: str) -> list:
    return list(read_conllu(FIXTURES / name))


def test_hand_computed_values() -> None:
    gold, pred = _docs("conll18-gold.conllu"), _docs("conll18-pred.conllu")
    assert len(gold) == 1 and len(gold[0]) == 9  # one doc (newdoc), the MWT's two words, no empty node
    scores = Conll18().update(gold, pred).scores()
    assert scores == pytest.approx(EXPECTED)


def test_merged_counts_equal_one_pass() -> None:
    gold, pred = _docs("conll18-gold.conllu"), _docs("conll18-pred.conllu")
    half = [Conll18().update(gold, pred).state(), Conll18().update(gold, pred).state()]
    assert Conll18.merge(half).scores() == pytest.approx(EXPECTED)


def test_columns_not_predicted_are_absent() -> None:
    gold, pred = _docs("conll18-gold.conllu"), _docs("conll18-pred.conllu")
    pred[0].heads = pred[0].deps = None  # no parser
    scores = Conll18().update(gold, pred).scores()
    assert all(scores[m] is None for m in ("UAS", "LAS", "CLAS", "MLAS", "BLEX"))
    assert scores["UPOS"] == pytest.approx(8 / 9) and scores["Lemmas"] == pytest.approx(8 / 9)


def test_gold_written_back_reproduces_the_file(tmp_path: Path) -> None:
    """Writing a file's own annotation into its copy gives the file back: heads are converted
    from doc indices to sentence-relative ones (the second sentence starts at word 7 of the doc),
    an empty FEATS is "_" again, and the MWT line and the empty node stay."""
    from distnlp.data.convert.conllu_out import write_conllu_predictions

    source = FIXTURES / "conll18-pred.conllu"
    write_conllu_predictions(source, _docs("conll18-pred.conllu"), tmp_path / "out.conllu")
    assert (tmp_path / "out.conllu").read_text() == source.read_text()
    gold = FIXTURES / "conll18-gold.conllu"
    write_conllu_predictions(gold, _docs("conll18-pred.conllu"), tmp_path / "mixed.conllu")
    assert Conll18().update(_docs("conll18-gold.conllu"), list(read_conllu(tmp_path / "mixed.conllu"))).scores() == pytest.approx(EXPECTED)
    assert "2.1\tbark" in (tmp_path / "mixed.conllu").read_text()


def test_columns_without_gold_are_absent_not_zero() -> None:
    """A corpus without trees or lemmas gave UAS 0.00 and Lemmas 100.00; they are not computed."""
    gold, pred = _docs("conll18-gold.conllu"), _docs("conll18-pred.conllu")
    gold[0].heads = gold[0].deps = gold[0].lemmas = None
    scores = Conll18().update(gold, pred).scores()
    assert all(scores[m] is None for m in ("Lemmas", "UAS", "LAS", "CLAS", "MLAS", "BLEX"))
    assert scores["UPOS"] == pytest.approx(8 / 9) and scores["UFeats"] == pytest.approx(8 / 9)
