"""The dependency parser in the pipeline: overfit then reload in a new process, sentences (given,
the senter's, none), a corpus without heads drops it, and the spaCy-like tree API."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import distnlp
from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.errors import ConfigError
from distnlp.models.mst import is_tree
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.loop import build_pipeline, run_worker

from .conftest import first_sentences

OVERFIT = [
    "nlp.pipeline=[tagger,parser]",
    "encoder.width=64",
    "training.max_steps=120",
    "training.eval_frequency=120",
    "training.optimizer.learn_rate=0.005",
    "training.optimizer.weight_decay=0.0",
    "training.batcher.size=2000",
    "components.tagger.model.label_smoothing=0.0",
]


def _parses(docs: list[Doc]) -> list[dict]:
    return [{"heads": d.heads, "deps": d.deps, "sent_starts": d.sent_starts} for d in docs]


def _sentence_trees_ok(doc: Doc) -> None:
    """Every sentence is one tree: heads inside it, one root, no cycle."""
    for sent in doc.sents:
        local = np.array([-1] + [0 if t.head.i == t.i else t.head.i - sent.start + 1 for t in sent])
        assert all(sent.start <= t.head.i < sent.end for t in sent), sent
        assert is_tree(local), (sent, local)


def test_overfit_then_reload_in_new_process(make_config, tiny_corpus: Path) -> None:
    config = make_config(*OVERFIT, train=tiny_corpus)
    result = run_worker(config)
    out = Path(result["output_dir"])
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["event"] == "eval"
    assert final["scores"]["dep_uas"] > 0.9 and final["scores"]["dep_las"] > 0.8, final["scores"]
    assert set(final["all_scores"]["dep_las_per_type"]) >= {"nsubj", "det"}

    model_dir = out / "model-last"
    gold = list(read_docs(tiny_corpus))
    nlp = distnlp.load(model_dir)
    assert nlp.pipe_names == ["tagger", "parser"]
    scores = nlp.evaluate(gold)
    assert scores["dep_uas"] > 0.9, scores
    preds = list(nlp.pipe([nlp.eval_input(d) for d in gold]))
    for doc in preds:
        _sentence_trees_ok(doc)
    script = (
        "import json, distnlp\n"
        "from distnlp.data.stream import read_docs\n"
        f"nlp = distnlp.load({str(model_dir)!r})\n"
        f"docs = [nlp.eval_input(d) for d in read_docs({str(tiny_corpus)!r})]\n"
        "print(json.dumps([{'heads': d.heads, 'deps': d.deps, 'sent_starts': d.sent_starts} for d in nlp.pipe(docs)]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == _parses(preds)


def _random_parser_pipeline(pipeline: str) -> Pipeline:
    config = compose_config([f"nlp.pipeline={pipeline}", "encoder.width=16"])
    labels = {"tagger": ["A"], "senter": ["I", "S"], "parser": ["root", "nsubj", "obj", "punct"]}
    nlp = Pipeline(config, {k: v for k, v in labels.items() if k in config["nlp"]["pipeline"]})
    torch.manual_seed(0)
    with torch.no_grad():  # scorers start at zero: randomise so the decoder has something to choose
        for p in nlp.components.parameters():
            p.normal_(0.0, 0.5)
    return nlp


def _doc(n: int, starts: list[int] | None) -> Doc:
    sent_starts = None if starts is None else [i in starts for i in range(n)]
    return Doc(words=[f"w{i % 7}" for i in range(n)], spaces=[True] * n, sent_starts=sent_starts)


def test_parses_within_the_given_sentences_or_the_whole_doc() -> None:
    nlp = _random_parser_pipeline("[parser]")
    given, none, one_word = nlp.predict([_doc(12, [0, 4, 5, 9]), _doc(9, None), _doc(1, [0])])
    assert [(s.start, s.end) for s in given.sents] == [(0, 4), (4, 5), (5, 9), (9, 12)]
    _sentence_trees_ok(given)
    assert given[4].head == given[4] and given[4].dep_ == "root"  # a one-word sentence is its own root
    assert none.sent_starts == [True] + [False] * 8  # one sentence, and doc.sents says so
    _sentence_trees_ok(none)
    assert one_word.heads == [0] and one_word.deps == ["root"]
    for doc in (given, none):  # only sentence roots carry the root label
        assert all((t.dep_ == "root") == (t.head == t) for t in doc)


def test_decoding_in_length_groups_equals_one_padded_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference scores sentences in groups of similar length under a budget; the trees and labels
    must be those of scoring every sentence padded together (a budget nothing exceeds)."""
    import distnlp.models.heads.parser as heads_parser

    nlp = _random_parser_pipeline("[parser]")
    docs = [_doc(40, [0, 3, 4, 20, 22]), _doc(9, None), _doc(1, [0]), _doc(25, [0, 12, 13])]

    def parse(budget: int) -> list[tuple[list, list]]:
        monkeypatch.setattr(heads_parser, "DECODE_BUDGET", budget)
        monkeypatch.setattr(heads_parser, "LABEL_CHUNK", 7 if budget < 100 else 4096)
        return [(d.heads, d.deps) for d in nlp.predict([Doc(words=d.words, spaces=d.spaces, sent_starts=d.sent_starts) for d in docs])]

    groups = heads_parser.length_groups(np.array([3, 1, 16, 2, 18, 9, 1, 12, 1, 12]), 2 * 12 * 13)
    assert sorted(s for g in groups for s in g) == list(range(10)) and len(groups) > 3  # all sentences, several groups
    assert all(len(g) * max(l for l in ([3, 1, 16, 2, 18, 9, 1, 12, 1, 12][s] for s in g)) ** 2 <= 2 * 12 * 13 or len(g) == 1
               for g in groups)
    assert parse(1) == parse(1 << 30)


def test_the_senter_splits_before_the_parser_whatever_the_order() -> None:
    nlp = _random_parser_pipeline("[parser,senter]")
    doc = nlp.predict([_doc(30, None)])[0]
    assert doc.sent_starts is not None and len(list(doc.sents)) > 1  # the random senter splits somewhere
    _sentence_trees_ok(doc)


def test_tree_api_like_spacy() -> None:
    doc = Doc(words=["She", "ate", "fish", "."], spaces=[True, True, False, False], sent_starts=[True, False, False, False],
              heads=[1, 1, 1, 1], deps=["nsubj", "root", "obj", "punct"])
    ate = doc[1]
    assert ate.head == ate and doc[0].head == ate and ate.dep_ == "root"
    assert [t.text for t in ate.children] == ["She", "fish", "."]
    assert [t.text for t in ate.lefts] == ["She"] and [t.text for t in ate.rights] == ["fish", "."]
    assert [t.i for t in ate.subtree] == [0, 1, 2, 3] and list(doc[2].ancestors) == [ate]
    assert next(doc.sents).root == ate and doc[2].sent.text == doc.text


def test_corpus_without_heads_drops_the_parser_with_a_log_line(tmp_path: Path, caplog) -> None:
    docs = [first_sentences(d, 2) for d in read_docs(DEMO_DATA / "train")][:3]
    for d in docs:
        d.heads, d.deps = None, None
    write_corpus(docs, tmp_path / "noheads", fmt="conllu", sources=[])
    config = compose_config([f"corpus.train={tmp_path / 'noheads'}", "nlp.pipeline=[tagger,parser]", "encoder.width=16"])
    with caplog.at_level(logging.INFO, logger="distnlp.training.labels"):
        nlp = build_pipeline(config)
    assert nlp.pipe_names == ["tagger"]
    assert any("parser" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


def test_partial_annotation_trains_only_on_known_heads() -> None:
    nlp = _random_parser_pipeline("[parser]")
    doc = _doc(6, [0, 3])
    doc.heads, doc.deps = [1, 1, None, 3, 3, None], ["nsubj", "root", None, "root", "obj", None]
    targets = nlp.components["parser"].targets([doc])
    assert nlp.components["parser"].count(targets) == 4  # the missing heads are not counted
    nlp.train()
    loss, n = nlp.losses(nlp.featurize([doc]))["parser"]
    assert n == 4 and loss.requires_grad and float(loss.detach()) > 0
    doc.heads = [None] * 6
    loss, n = nlp.losses(nlp.featurize([doc]))["parser"]
    assert n == 0 and float(loss.detach()) == 0.0 and loss.requires_grad  # still in the graph: the step reduces it


def test_bad_parser_setting_is_a_config_error_naming_the_key() -> None:
    config = compose_config(["nlp.pipeline=[parser]", "encoder.width=16", "components.parser.model.arc_width=0"])
    with pytest.raises(ConfigError, match=r"^components\.parser\.model: arc_width must be positive, not 0"):
        Pipeline(config, {"parser": ["root", "nsubj"]})


def test_optional_bilstm_keeps_sentences_apart_and_learns() -> None:
    from distnlp.models.heads.parser import BiaffineParserHead

    torch.manual_seed(0)
    head = BiaffineParserHead(arc_width=16, label_width=8, lstm_width=8).initialize(12, ["root", "dep"])
    X = torch.randn(9, 12)
    starts = torch.tensor([True, False, False, False, True, False, True, False, False])  # sentences of 4, 2 and 3 words
    together = head.projections(head(X, [4, 0, 5]), starts)
    alone = head.projections(head(X[6:], [3]), torch.tensor([True, False, False]))
    for key in ("arc_dep", "lab_dep"):  # the last sentence's vectors depend on no other sentence
        torch.testing.assert_close(together[key][6:], alone[key])
    assert not torch.allclose(head.projections(head(X, [9]), torch.tensor([True] + [False] * 8))["arc_dep"][6:], alone["arc_dep"])
    docs = [_doc(4, [0]), _doc(0, None), _doc(5, [0, 2])]
    docs[0].heads, docs[0].deps = [1, 1, 1, 2], ["dep", "root", "dep", "dep"]
    docs[2].heads, docs[2].deps = [0, 0, 3, 3, 3], ["root", "dep", "dep", "root", "dep"]
    targets = head.targets(docs, {"root": 0, "dep": 1})
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(60):
        loss, n = head.loss(head(X, [4, 0, 5]), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert n == 9 and float(loss.detach()) / n < 0.05
    heads, _ = head.decode(head(X, [4, 0, 5]), targets["starts"])
    assert heads.tolist() == [1, 1, 1, 2, 4, 4, 7, 7, 7]  # flat indices: doc 2 starts at token 4
