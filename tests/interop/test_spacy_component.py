"""A distnlp model inside a spaCy pipeline: it annotates spaCy Docs, `nlp.evaluate` (what `spacy
evaluate` runs) gives distnlp's own evaluate scores, and `spacy.load` of the saved pipeline works."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc as SpacyDoc  # noqa: E402
from spacy.training import Example  # noqa: E402

import distnlp.interop.spacy_component  # noqa: E402,F401  (registers the factory, as the entry point does)
from distnlp.cli.compose import DEMO_DATA, compose_config  # noqa: E402
from distnlp.config import validate_config  # noqa: E402
from distnlp.data.stream import read_docs  # noqa: E402
from distnlp.pipeline.pipeline import Pipeline  # noqa: E402
from distnlp.training.loop import run_worker  # noqa: E402
from distnlp.interop.to_spacy import to_spacy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("spacy_component") / "train"
    config = compose_config([
        f"training.output_dir={out}", f"corpus.train={DEMO_DATA / 'dev'}", f"corpus.dev={DEMO_DATA / 'dev'}",
        "nlp.pipeline=[tagger,morphologizer,parser,lemmatizer,ner]", "encoder.width=32", "training.max_steps=12",
        "training.eval_frequency=12", "training.dropout=0.0", "components.parser.model.arc_width=32",
        "components.parser.model.label_width=16", "training.checkpoints_to_keep=0",
    ])
    validate_config(config)
    return Path(run_worker(config)["output_dir"]) / "model-last"


def _gold(n: int = 12) -> list:
    return list(read_docs(DEMO_DATA / "dev"))[:n]


def test_scores_in_spacy_equal_distnlp_evaluate(model_dir: Path) -> None:
    golds = _gold()
    ours = Pipeline.from_disk(model_dir).evaluate(golds)
    nlp = spacy.blank("en")
    nlp.add_pipe("distnlp", config={"model": str(model_dir)})
    references = to_spacy(golds, nlp)
    # the parser has no senter: it parses within the gold sentences, as distnlp's evaluate does
    examples = [Example(SpacyDoc(nlp.vocab, words=g.words, spaces=g.spaces, sent_starts=g.sent_starts), ref)
                for g, ref in zip(golds, references)]
    theirs = nlp.evaluate(examples)
    keys = ["tag_acc", "pos_acc", "morph_acc", "lemma_acc", "dep_uas", "dep_las", "ents_p", "ents_r", "ents_f"]
    assert ours["dep_uas"] > 0.0 and ours["tag_acc"] > 0.0  # trained at all: the comparison means something
    for key in keys:
        assert theirs[key] == pytest.approx(ours[key], abs=1e-9), (key, ours[key], theirs[key])
    assert theirs["ents_per_type"].keys() == ours["ents_per_type"].keys()


def test_component_annotates_and_survives_spacy_load(model_dir: Path, tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("distnlp", config={"model": str(model_dir)})
    text = "The quick brown fox jumped over the lazy dog in New York ."
    doc = nlp(text)
    ours = Pipeline.from_disk(model_dir)(nlp.make_doc(text).text)
    assert [t.tag_ for t in doc] and all(t.tag_ for t in doc)
    assert all(t.dep_ for t in doc) and sum(t.head.i == t.i for t in doc) >= 1
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    again = loaded(text)
    for attr in ("tag_", "pos_", "lemma_", "dep_", "ent_iob_", "ent_type_"):
        assert [getattr(t, attr) for t in again] == [getattr(t, attr) for t in doc], attr
    assert [t.head.i for t in again] == [t.head.i for t in doc]
    if [t.text for t in doc] == ours.words:  # same tokens: the same predictions as distnlp itself
        assert [t.tag_ for t in doc] == ours.tags


def test_factory_entry_point_is_declared() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"]["spacy_factories"]["distnlp"]
    module, _, attr = target.partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is distnlp.interop.spacy_component.make_distnlp_component
    assert any(dep.startswith("spacy") for dep in meta["project"]["optional-dependencies"]["spacy"])


def test_missing_model_is_a_one_line_error() -> None:
    from distnlp.errors import DistnlpError

    nlp = spacy.blank("en")
    nlp.add_pipe("distnlp", config={"model": "no/such/model-best"})
    with pytest.raises(DistnlpError, match="no/such/model-best: model directory not found"):
        nlp("text")


def test_component_score_equals_distnlp_scorer_on_imperfect_predictions(model_dir: Path) -> None:
    """Predictions with known errors (every 3rd tag, every 4th head, every 2nd entity), so every
    score is strictly between 0 and 1 and a scorer that counts differently shows."""
    import copy

    from distnlp.scoring import Scorer

    golds = [g for g in _gold(20) if g.ent_spans][:8]
    preds = []
    for g in golds:
        p = copy.deepcopy(g)
        p.tags = [t if i % 3 else "XX" for i, t in enumerate(g.tags)]
        p.pos = [t if i % 5 else "X" for i, t in enumerate(g.pos)]
        p.lemmas = [t if i % 4 or t is None else t.upper() + "_" for i, t in enumerate(g.lemmas)]  # None: no gold lemma
        p.morphs = [m if i % 6 else "Foo=Bar" for i, m in enumerate(g.morphs)]
        p.heads = [h if i % 4 or h is None else (i + 1) % len(g) for i, h in enumerate(g.heads)]
        p.deps = [d if i % 7 else "dep" for i, d in enumerate(g.deps)]
        p.ent_spans = [e if k % 2 else (e[0], e[1], "WRONG") for k, e in enumerate(g.ent_spans)]
        p.ents_missing = None
        preds.append(p)
    nlp = spacy.blank("en")
    component = nlp.add_pipe("distnlp", config={"model": str(model_dir)})
    examples = [Example(p, r) for p, r in zip(to_spacy(preds, nlp), to_spacy(golds, nlp))]
    theirs = component.score(examples)
    ours = Scorer(component.pipeline.scorer().config["attrs"]).update(golds, preds).scores()
    for key in ("tag_acc", "pos_acc", "morph_acc", "lemma_acc", "dep_uas", "dep_las", "ents_p", "ents_r", "ents_f"):
        assert 0.0 < ours[key] < 1.0, key
        assert theirs[key] == pytest.approx(ours[key], abs=1e-9), (key, ours[key], theirs[key])


def test_entry_point_lets_spacy_load_the_pipeline_without_importing_distnlp(model_dir: Path, tmp_path: Path) -> None:
    """spacy.load in a fresh process finds the factory through the spacy_factories entry point
    that pyproject.toml declares (installed here as a minimal dist-info, since the venv's
    distnlp metadata may come from another checkout)."""
    import subprocess
    import sys

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"]["spacy_factories"]["distnlp"]
    dist = tmp_path / "site" / "distnlp_entry_points-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: distnlp-entry-points\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[spacy_factories]\ndistnlp = {target}\n")
    code = (
        "import sys, spacy; nlp = spacy.blank('en'); nlp.add_pipe('distnlp', config={'model': sys.argv[1]}); "
        "nlp.to_disk(sys.argv[2]); "
        "doc = spacy.load(sys.argv[2])('The cat sat on the mat .'); print(all(t.tag_ for t in doc), all(t.dep_ for t in doc))"
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code, str(model_dir), str(tmp_path / "pipeline")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("multilabel", [False, True])
def test_cats_and_sentence_scores_equal_distnlp_scorer(multilabel: bool) -> None:
    """The textcat and senter scores of the component (spaCy's scorers) against distnlp's Scorer
    on predictions with known errors."""
    import random

    from distnlp.data.doc import Doc
    from distnlp.interop.spacy_component import score_examples
    from distnlp.scoring import Scorer

    rng = random.Random(0)
    labels = ["SPORT", "POLITICS", "TECH"]
    golds, preds = [], []
    for i in range(30):
        words = [f"w{j}" for j in range(8)]
        starts = [j in (0, 3, 6) for j in range(8)]
        gold_cats = {lab: float(rng.random() < 0.4) for lab in labels} if multilabel else {lab: float(lab == labels[i % 3]) for lab in labels}
        pred_cats = {lab: rng.random() for lab in labels}
        golds.append(Doc(words=words, spaces=[True] * 8, sent_starts=starts, cats=gold_cats))
        preds.append(Doc(words=words, spaces=[True] * 8, sent_starts=[j in (0, 3 + i % 2, 6) for j in range(8)], cats=pred_cats))
    nlp = spacy.blank("en")
    examples = [Example(p, g) for p, g in zip(to_spacy(preds, nlp), to_spacy(golds, nlp))]
    theirs = score_examples(examples, ["sents", "cats"], cats_labels=labels, cats_multilabel=multilabel)
    ours = Scorer(["sents", "cats"], cats_labels=labels, cats_exclusive=not multilabel).update(golds, preds).scores()
    for key in ("sents_p", "sents_r", "sents_f", "cats_score", "cats_micro_f", "cats_macro_f", "cats_macro_auc"):
        assert 0.0 < ours[key] < 1.0, key
        assert theirs[key] == pytest.approx(ours[key], abs=1e-9), (key, ours[key], theirs[key])
