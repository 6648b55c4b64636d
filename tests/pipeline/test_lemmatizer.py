"""The lemmatizer end to end: overfit then reload in a new process, unseen words, missing lemmas."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import distnlp
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.lemma.edit_trees import tree_for
from distnlp.pipeline.components import IGNORE
from distnlp.training.loop import build_pipeline, run_worker

OVERFIT = [
    "nlp.pipeline=[tagger,lemmatizer]",
    "components.lemmatizer.min_tree_freq=1",
    "encoder.width=64",
    "training.max_steps=100",
    "training.eval_frequency=100",
    "training.optimizer.learn_rate=0.005",
    "training.optimizer.weight_decay=0.0",
    "training.batcher.size=2000",
]


def test_overfit_then_reload_in_new_process(make_config, tiny_corpus: Path) -> None:
    result = run_worker(make_config(*OVERFIT, train=tiny_corpus))
    metrics = [json.loads(line) for line in (Path(result["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    scores = [m for m in metrics if m["event"] == "eval"][-1]["scores"]
    assert scores["lemma_acc"] > 0.9, scores

    model_dir = Path(result["output_dir"]) / "model-last"
    nlp = distnlp.load(model_dir)
    assert nlp.pipe_names == ["tagger", "lemmatizer"]
    docs = list(read_docs(tiny_corpus))
    expected = [d.lemmas for d in nlp.pipe([d.copy_unannotated() for d in docs])]
    right = sum(p == g for d, lemmas in zip(docs, expected) for p, g in zip(lemmas, d.lemmas) if g is not None)
    assert right / sum(g is not None for d in docs for g in d.lemmas) > 0.9
    script = (
        "import json, distnlp\n"
        "from distnlp.data.stream import read_docs\n"
        f"nlp = distnlp.load({str(model_dir)!r})\n"
        f"docs = [d.copy_unannotated() for d in read_docs({str(tiny_corpus)!r})]\n"
        "print(json.dumps([d.lemmas for d in nlp.pipe(docs)]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == expected


def test_unseen_words_back_off_to_the_form(make_config, tiny_corpus: Path) -> None:
    nlp = build_pipeline(make_config("nlp.pipeline=[lemmatizer]", "encoder.width=32", "components.lemmatizer.min_tree_freq=1", train=tiny_corpus))
    comp = nlp.components["lemmatizer"]
    plural = comp.label_index[tree_for("cats", "cat")]
    ident = comp.label_index[tree_for("dog", "dog")]
    doc = Doc(words=["houses", "Zyx", "s"], spaces=[True, True, False])
    scores = torch.full((3, len(comp.labels)), -5.0)
    scores[:, plural] = 5.0  # "drop a final s" ranked first for every token
    comp.settings.update(top_k=1, backoff="orth")
    comp.set_annotations([doc], scores, [3])
    assert doc.lemmas == ["house", "Zyx", "s"]  # the tree fits "houses" only; the others keep their form
    comp.settings.update(backoff="lower")
    comp.set_annotations([doc], scores, [3])
    assert doc.lemmas == ["house", "zyx", "s"]
    comp.settings.update(backoff=None)
    comp.set_annotations([doc], scores, [3])
    assert doc.lemmas == ["house", None, None]
    scores[:, ident] = 4.0  # second best: identity, which fits any form; tried with top_k=2 only
    comp.set_annotations([doc], scores, [3])
    assert doc.lemmas == ["house", None, None]
    comp.settings.update(top_k=2)
    comp.set_annotations([doc], scores, [3])
    assert doc.lemmas == ["house", "Zyx", "s"]

def test_missing_and_rare_lemmas_carry_no_loss(make_config, tiny_corpus: Path) -> None:
    nlp = build_pipeline(make_config("nlp.pipeline=[lemmatizer]", "encoder.width=32", "components.lemmatizer.min_tree_freq=1", train=tiny_corpus))
    comp = nlp.components["lemmatizer"]
    doc = Doc(words=["cats", "went", "qqqxyz"], spaces=[True, True, False], lemmas=["cat", None, "zzz"])
    targets = comp.targets([doc, Doc(words=["a"], spaces=[False])])
    assert targets.tolist() == [comp.label_index[tree_for("cats", "cat")], IGNORE, IGNORE, IGNORE]
    assert comp.count(targets) == 1


def test_evaluate_conllu_writes_predictions_into_a_copy(make_config, tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from distnlp.cli.main import main
    from distnlp.data.convert.conllu import read_conllu

    from .conftest import FIXTURES

    nlp = build_pipeline(make_config("nlp.pipeline=[tagger,lemmatizer]", "encoder.width=32", "components.lemmatizer.min_tree_freq=1", train=tiny_corpus))
    nlp.to_disk(tmp_path / "model")
    source = FIXTURES / "conll18-gold.conllu"
    pred, scores = tmp_path / "pred.conllu", tmp_path / "scores.json"
    assert main(["evaluate", str(tmp_path / "model"), str(source), "--conllu", str(pred), "-o", str(scores), "--device", "cpu"]) == 0
    src, out = source.read_text().splitlines(), pred.read_text().splitlines()
    assert len(src) == len(out)
    for a, b in zip(src, out):
        cols_a, cols_b = a.split("\t"), b.split("\t")
        if a.startswith("#") or not a or "-" in cols_a[0] or "." in cols_a[0]:
            assert a == b  # comments, multiword tokens, empty nodes, blank lines: verbatim
        else:  # FORM, UPOS, FEATS, HEAD, DEPREL, DEPS, MISC from the input; LEMMA and XPOS predicted
            assert [cols_b[i] for i in (0, 1, 3, 5, 6, 7, 8, 9)] == [cols_a[i] for i in (0, 1, 3, 5, 6, 7, 8, 9)]
    docs = [d for d in nlp.pipe([d.copy_unannotated() for d in read_conllu(source)])]
    back = list(read_conllu(pred))
    assert [d.lemmas for d in back] == [d.lemmas for d in docs] and [d.tags for d in back] == [d.tags for d in docs]
    result = json.loads(scores.read_text())
    assert result["UAS"] is None and result["UPOS"] is None  # no parser, no morphologizer: absent
    assert result["Lemmas"] is not None and result["XPOS"] is not None and "lemma_acc" in result
    # a converted corpus has lost the lines to copy: refused, naming the option
    assert main(["evaluate", str(tmp_path / "model"), str(tiny_corpus), "--conllu", str(pred)]) == 1
    assert "--conllu" in capsys.readouterr().err


def test_corpus_without_lemmas_leaves_it_out_with_a_log_line(make_config, tmp_path: Path, caplog) -> None:
    from distnlp.data.convert import write_corpus

    from .conftest import first_sentences

    docs = [first_sentences(d, 2) for d in read_docs(_demo())][:3]
    for d in docs:
        d.lemmas = None
    write_corpus(docs, tmp_path / "nolemmas", fmt="conllu", sources=[])
    with caplog.at_level("INFO"):
        nlp = build_pipeline(make_config("nlp.pipeline=[tagger,lemmatizer]", "encoder.width=32", train=tmp_path / "nolemmas"))
    assert nlp.pipe_names == ["tagger"]
    assert "lemmatizer: the training corpus has no labels for it" in caplog.text


def _demo() -> Path:
    from distnlp.cli.compose import DEMO_DATA

    return DEMO_DATA / "train"


def test_tree_labels_commonest_first() -> None:
    from distnlp.training.labels import lemma_tree_labels

    labels = lemma_tree_labels(str(_demo()), 3)
    assert labels[0] == tree_for("dog", "dog")  # identity: an untrained head (all scores equal) keeps the form
    assert len(labels) == len(set(labels)) and labels == lemma_tree_labels(str(_demo()), 3)
