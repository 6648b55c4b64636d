"""Raw text in: sentences from the senter (paragraph breaks always split, whitespace never starts
one), one tree per sentence, a document without boundaries parsed in bounded segments, CoNLL-U
out (`evaluate --raw --conllu`, `annotate --format conllu`), and gold sentences on request."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import distnlp
from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.cli.main import main
from distnlp.data.convert.conllu_out import doc_to_conllu
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.models.heads.parser import bounded_starts
from distnlp.models.mst import is_tree
from distnlp.pipeline.components import paragraph_aware_starts
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.loop import run_worker

from .conftest import cut_corpus


def _trees_ok(doc: Doc) -> None:
    for sent in doc.sents:
        local = np.array([-1] + [0 if t.head.i == t.i else t.head.i - sent.start + 1 for t in sent])
        assert all(sent.start <= t.head.i < sent.end for t in sent), sent
        assert is_tree(local), (sent, local)


def test_paragraph_breaks_split_and_whitespace_never_starts_a_sentence() -> None:
    words = ["Hi", ".", "\n\n", "New", "para", " ", "here", "\n", "on"]
    predicted = [True, False, True, False, False, True, False, False, False]
    # the start predicted on "\n\n" moves to "New" (which a blank line starts anyway); the one on
    # " " moves to "here"; a single newline is no paragraph break
    assert paragraph_aware_starts(words, predicted) == [True, False, False, True, False, False, True, False, False]
    assert paragraph_aware_starts([" ", "a"], [False, False]) == [True, True]  # a doc opening with whitespace


def test_bounded_starts_cuts_long_sentences_into_equal_segments() -> None:
    starts = np.zeros(25, dtype=bool)
    starts[[0, 3]] = True  # a 3-word sentence, then 22 words
    out = bounded_starts(starts, 10)
    firsts = list(np.flatnonzero(out))
    assert firsts[:2] == [0, 3] and len(firsts) == 4  # 22 words -> 3 segments of 7-8
    lengths = np.diff(firsts + [25])
    assert lengths.max() <= 10 and lengths[1:].min() >= 7


def test_conllu_of_a_predicted_doc_drops_whitespace_and_keeps_spacing() -> None:
    doc = Doc(words=["Hello", "there", "!", "\n\n", "Bye", "."], spaces=[True, False, False, False, False, False], doc_id="d1",
              sent_starts=[True, False, False, False, True, False], heads=[1, 1, 1, 1, 4, 4],
              deps=["intj", "root", "punct", "dep", "root", "punct"], pos=["INTJ", "ADV", "PUNCT", "SPACE", "INTJ", "PUNCT"])
    text = doc_to_conllu(doc)
    lines = text.splitlines()
    assert lines[:3] == ["# newdoc id = d1", "# sent_id = d1-1", "# text = Hello there!"]
    assert text.endswith("\n\n") and lines[6] == "" and lines[7] == "# sent_id = d1-2"  # a blank line after each sentence
    words = [line.split("\t") for line in lines if line and not line.startswith("#")]
    assert [w[1] for w in words] == ["Hello", "there", "!", "Bye", "."]
    assert [w[6] for w in words] == ["2", "0", "2", "0", "1"] and [w[7] for w in words][:2] == ["intj", "root"]
    assert [w[9] for w in words] == ["_", "SpaceAfter=No", "_", "SpaceAfter=No", "_"]  # "!" is followed by the blank line
    assert [w[4] for w in words] == ["_"] * 5 and [w[3] for w in words][0] == "INTJ"  # no tags predicted: "_"


def _random_parser_pipeline(pipeline: str, width: int = 16) -> Pipeline:
    config = compose_config([f"nlp.pipeline={pipeline}", f"encoder.width={width}"])
    labels = {"tagger": ["A"], "senter": ["I", "S"], "parser": ["root", "nsubj", "obj", "punct"]}
    nlp = Pipeline(config, {k: v for k, v in labels.items() if k in config["nlp"]["pipeline"]})
    torch.manual_seed(0)
    with torch.no_grad():
        for p in nlp.components.parameters():
            p.normal_(0.0, 0.5)
    return nlp


def test_a_document_without_boundaries_is_parsed_in_bounded_memory(tmp_path: Path) -> None:
    """20,000 words with no sentence start: one tree over them would need [20k, 20k] arc scores
    (1.6 GB each, several of them); in segments of at most max_sentence_length words the parse
    stays far below that, and every segment is a sentence with its own tree."""
    nlp = _random_parser_pipeline("[parser]")
    nlp.to_disk(tmp_path / "model")
    script = (
        "import json, resource, torch\n"
        "torch.set_num_threads(1)\n"
        "import distnlp\n"
        "from distnlp.data.doc import Doc\n"
        f"nlp = distnlp.load({str(tmp_path / 'model')!r})\n"
        "nlp.predict([Doc(words=['w1'] * 50, spaces=[True] * 50)])  # warm up: imports, compiled decoder\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "doc = nlp.predict([Doc(words=['w%d' % (i % 7) for i in range(20000)], spaces=[True] * 20000)])[0]\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'grew_mb': (after - before) / 1024, 'sent_starts': doc.sent_starts, 'heads': doc.heads}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["grew_mb"] < 400, out["grew_mb"]
    doc = Doc(words=["w"] * 20000, spaces=[True] * 20000, sent_starts=out["sent_starts"], heads=out["heads"])
    lengths = np.diff([i for i, s in enumerate(doc.sent_starts) if s] + [len(doc)])
    assert lengths.max() <= 256 and len(lengths) == 79  # ceil(20000 / 256) segments
    _trees_ok(doc)


def test_whitespace_tokens_head_nothing() -> None:
    nlp = _random_parser_pipeline("[parser]")
    words = ["a", "b", "\n\n", "c", " ", "d", "e"]
    for _ in range(3):
        doc = nlp.predict([Doc(words=words, spaces=[True, False, False, True, False, True, False])])[0]
        _trees_ok(doc)
        assert not any(words[h].isspace() for i, h in enumerate(doc.heads) if h != i)
        assert all(doc.heads[i] != i for i, w in enumerate(words) if w.isspace())  # never the root either
        with torch.no_grad():
            for p in nlp.components.parameters():
                p.normal_(0.0, 1.0)


@pytest.fixture(scope="module")
def trained_raw_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """senter + tagger + parser on 60 demo (EWT) docs: enough to split plain sentences."""
    root = tmp_path_factory.mktemp("raw")
    corpus = cut_corpus(root / "corpus", 60, max_words=1500)
    config = compose_config([
        f"training.output_dir={root / 'out'}", f"corpus.train={corpus}", f"corpus.dev={corpus}", "nlp.pipeline=[senter,tagger,parser]",
        "encoder.width=64", "training.max_steps=300", "training.eval_frequency=300", "training.optimizer.learn_rate=0.005",
        "training.batcher.size=2000",
    ])
    torch.set_num_threads(1)
    result = run_worker(config)
    return Path(result["output_dir"]) / "model-last"


@pytest.mark.slow
def test_two_sentences_of_raw_text_get_two_sentences_and_two_trees(trained_raw_model: Path) -> None:
    nlp = distnlp.load(trained_raw_model)
    doc = nlp("I bought a new car last week. My brother thinks it is too expensive.")
    sents = list(doc.sents)
    assert [s.text for s in sents] == ["I bought a new car last week.", "My brother thinks it is too expensive."]
    assert sum(t.head.i == t.i for t in doc) == 2  # one root per sentence
    _trees_ok(doc)


@pytest.mark.slow
def test_evaluate_raw_writes_conllu_that_scores_the_same(trained_raw_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distnlp.scoring.conll18_raw import evaluate_ud, read_ud

    gold = tmp_path / "gold.conllu"
    source = (DEMO_DATA / "demo-dev.conllu").read_text(encoding="utf8").split("\n\n")
    gold.write_text("\n\n".join(source[:40]).strip() + "\n\n", encoding="utf8")
    pred, scores_path = tmp_path / "pred.conllu", tmp_path / "scores.json"
    assert main(["evaluate", str(trained_raw_model), str(gold), "--raw", "--conllu", str(pred), "-o", str(scores_path)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("Metric") and "Sentences" in table and "LAS" in table
    scores = json.loads(scores_path.read_text())
    again = evaluate_ud(read_ud(gold), read_ud(pred))  # the written file, read back as the official scorer reads it
    for metric in ("Tokens", "Sentences", "Words", "XPOS", "UAS", "LAS"):
        assert scores[metric] == pytest.approx(again[metric].f1), metric
    assert scores["Tokens"] > 0.9 and scores["Sentences"] > 0.3 and 0.0 < scores["LAS"] < 1.0
    assert "UPOS" not in scores  # no morphologizer: not scored


@pytest.mark.slow
def test_gold_sents_keeps_the_gold_sentences(trained_raw_model: Path, tmp_path: Path) -> None:
    corpus = DEMO_DATA / "dev"
    out_pred, out_gold = tmp_path / "pred.json", tmp_path / "gold.json"
    assert main(["evaluate", str(trained_raw_model), str(corpus), "-o", str(out_pred)]) == 0
    assert main(["evaluate", str(trained_raw_model), str(corpus), "--gold-sents", "-o", str(out_gold)]) == 0
    predicted, given = json.loads(out_pred.read_text()), json.loads(out_gold.read_text())
    assert predicted["sents_f"] < 1.0 and "sents_f" not in given  # the senter did not run: nothing to score
    nlp = distnlp.load(trained_raw_model)
    gold = next(iter(read_docs(corpus)))
    with nlp.select_pipes(disable=["senter"]):
        doc = nlp.predict([nlp.eval_input(gold, gold_sents=True)])[0]
    assert doc.sent_starts == [bool(s) for s in gold.sent_starts]


def test_a_parser_that_annotated_can_still_train() -> None:
    """Cached helpers made under inference_mode must not leak into training's autograd."""
    from distnlp.models.heads import parser as heads_parser

    heads_parser._BUCKETS.clear()
    nlp = _random_parser_pipeline("[parser]")
    doc = Doc(words=["a", "b", "c"], spaces=[True, True, False], sent_starts=[True, False, False], heads=[1, 1, 1], deps=["nsubj", "root", "obj"])
    nlp.predict([Doc(words=doc.words, spaces=doc.spaces)])  # first use: under inference_mode
    nlp.train()
    losses = nlp.losses(nlp.featurize([doc]))
    sum(loss for loss, _ in losses.values()).backward()


def test_compiled_decoding_equals_the_reference_on_every_dev_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sentence of the demo dev set (gold sentences), scored by a parser with random
    weights (greedy heads rarely a tree: the search runs), decoded by the compiled batch decoder
    and by the numpy reference decoder, sentence by sentence: the same trees."""
    import distnlp.models.mst_batch as mst_batch
    from distnlp.models.mst import decode_tree

    nlp = _random_parser_pipeline("[parser]", width=32)
    gold = list(read_docs(DEMO_DATA / "dev"))

    def parse() -> list[list[int]]:
        docs = [Doc(words=d.words, spaces=d.spaces, sent_starts=d.sent_starts) for d in gold]
        return [d.heads for d in nlp.pipe(docs)]

    compiled = parse()

    def reference(logp: np.ndarray, lens: np.ndarray) -> np.ndarray:
        out = np.full(logp.shape[:2], -1, dtype=np.int64)
        for s, n in enumerate(lens):
            tree = np.full((n + 1, n + 1), -np.inf)
            tree[1:] = logp[s, :n, : n + 1]
            out[s, :n] = decode_tree(tree)[1:]
        return out

    monkeypatch.setattr(mst_batch, "decode_batch", reference)
    assert parse() == compiled
    assert sum(len(list(d.sents)) for d in gold) > 500  # every sentence of a real dev set


def test_a_bad_max_sentence_length_is_a_config_error_naming_the_key() -> None:
    from distnlp.errors import ConfigError

    nlp = _random_parser_pipeline("[parser]")
    nlp.components["parser"].settings["max_sentence_length"] = 0
    with pytest.raises(ConfigError, match="components.parser.max_sentence_length"):
        nlp.predict([Doc(words=["a", "b"], spaces=[True, False])])
