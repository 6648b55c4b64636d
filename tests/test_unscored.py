"""`distnlp evaluate` names the scores a corpus cannot give (no gold annotation for them) in one
line, and says nothing about metrics the pipeline does not predict."""
from __future__ import annotations

from pathlib import Path

from distnlp.data.convert.conllu import read_conllu
from distnlp.scoring import Scorer
from distnlp.scoring.conll18 import Conll18
from distnlp.scoring.unscored import unscored_note

FIXTURES = Path(__file__).parent / "fixtures"


def _scores(gold: list, pred: list, attrs: tuple[str, ...]) -> dict:
    scores = Scorer(attrs).update(gold, pred).scores()
    scores.update(Conll18().update(gold, pred).scores())
    return scores


def test_note_names_the_missing_annotation_and_its_scores() -> None:
    gold, pred = list(read_conllu(FIXTURES / "conll18-gold.conllu")), list(read_conllu(FIXTURES / "conll18-pred.conllu"))
    pred[0].ent_spans = [(0, 1, "PER")]  # the pipeline has NER; the CoNLL-U gold has no entities
    gold[0].lemmas = None
    scores = _scores(gold, pred, ("tag", "lemma", "dep", "ents"))
    note = unscored_note(scores, gold, pred, "dev.conllu")
    assert note == "not scored (dev.conllu has no gold lemmas or entities): lemma_acc, ents_p, ents_r, ents_f, Lemmas, BLEX"


def test_no_note_when_everything_predicted_is_scored() -> None:
    gold, pred = list(read_conllu(FIXTURES / "conll18-gold.conllu")), list(read_conllu(FIXTURES / "conll18-pred.conllu"))
    pred[0].heads = pred[0].deps = None  # no parser: UAS ... BLEX are not asked of the corpus
    assert unscored_note(_scores(gold, pred, ("tag", "pos")), gold, pred, "dev.conllu") is None
