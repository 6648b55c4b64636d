"""Several corpora, one pipeline: label inventories are the union over the corpora, a head learns
only from the corpora that have its labels (a text classification corpus teaches NER nothing,
not "no entity"), evaluation scores each dev set and all together, and a killed two-corpus run
resumes exactly."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.cli.main import main
from distnlp.data.stream import read_docs
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.labels import pipeline_labels

INTENTS = "text,category\n" + "".join(
    f"{text},{label}\n" for text, label in [
        ("I am still waiting on my card?", "card_arrival"), ("Where is my new card", "card_arrival"),
        ("How do I top up by cheque?", "top_up"), ("My top-up failed in London", "top_up"),
        ("Can I get a refund", "refund"), ("I want my money back from Paris", "refund"),
    ] * 4
)
MORE_INTENTS = "text,label\nwhen does my card come,card_arrival\nfreeze my account now,freeze\n"

CONLLU = (
    "# newdoc id = d{n}\n# sent_id = s{n}\n"
    "1\tcats\tcat\tNOUN\tNNS\tNumber=Plur\t2\tnsubj\t_\t_\n2\truns\trun\tVERB\tVBZ\t_\t0\troot\t_\t_\n"
    "3\tdogs\tdog\tNOUN\tNNS\tNumber=Plur\t2\tobj\t_\t_\n\n"
)


def convert(tmp_path: Path, name: str, text: str, suffix: str) -> str:
    src = tmp_path / f"{name}{suffix}"
    src.write_text(text, encoding="utf-8")
    assert main(["convert", str(src), str(tmp_path / name)]) in (0, None)
    return str(tmp_path / name)


@pytest.fixture(scope="module")
def intents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A banking77-like corpus, converted from CSV as the real one is: cats, no other annotation."""
    root = tmp_path_factory.mktemp("intents")
    dev = "text,category\n" + "".join(INTENTS.splitlines(keepends=True)[1:8])
    return {"train": convert(root, "b77-train", INTENTS, ".csv"), "dev": convert(root, "b77-dev", dev, ".csv")}


def three_heads(*overrides: str) -> dict:
    return compose_config(["encoder.width=32", "nlp.pipeline=[tagger,ner,textcat]", *overrides])


def test_labels_are_the_union_in_first_seen_order(tmp_path: Path, intents: dict[str, str]) -> None:
    more = convert(tmp_path, "more", MORE_INTENTS, ".csv")
    config = three_heads()
    labels = pipeline_labels(config, [str(DEMO_DATA / "train"), intents["train"], more])
    assert labels["textcat"] == ["card_arrival", "refund", "top_up", "freeze"]
    assert pipeline_labels(config, [more, intents["train"]])["textcat"] == ["card_arrival", "freeze", "refund", "top_up"]
    assert labels["tagger"] == pipeline_labels(config, str(DEMO_DATA / "train"))["tagger"]  # tags from EWT alone
    assert labels["ner"] == pipeline_labels(config, str(DEMO_DATA / "train"))["ner"]


def test_lemma_trees_are_counted_over_all_corpora(tmp_path: Path) -> None:
    a = convert(tmp_path, "a", CONLLU.format(n=1) + CONLLU.format(n=2), ".conllu")  # cats, runs, dogs: -s removal 6x
    b = convert(tmp_path, "b", CONLLU.format(n=3), ".conllu")  # 3x more
    config = compose_config(["nlp.pipeline=[lemmatizer]", "components.lemmatizer.min_tree_freq=7"])
    assert pipeline_labels(config, a)["lemmatizer"] == []  # 6 < 7 in either corpus alone
    assert len(pipeline_labels(config, [a, b])["lemmatizer"]) == 1  # 9 >= 7 over both


def test_a_corpus_without_entities_gives_ner_nothing(intents: dict[str, str]) -> None:
    """Would fail if an intent doc taught NER "no entity" (all O): its NER targets must be empty,
    not O, and in a mixed batch NER counts and learns only from the EWT docs."""
    config = three_heads()
    nlp = Pipeline(config, pipeline_labels(config, [str(DEMO_DATA / "train"), intents["train"]]))
    ewt = list(read_docs(DEMO_DATA / "train"))[:2]
    b77 = list(read_docs(intents["train"]))[:6]
    assert all(d.ent_spans is None and d.tags is None and d.cats for d in b77)  # as converted: unknown, not empty

    def counts(docs: list) -> dict[str, int]:
        batch = nlp.featurize(docs)
        return {name: int(nlp.components[name].count(batch.targets[name])) for name in nlp.pipe_names}

    assert counts(b77) == {"tagger": 0, "ner": 0, "textcat": 6}
    ewt_tokens = sum(len(d) for d in ewt) - sum(e - s for d in ewt for s, e in (d.ents_missing or []))
    assert counts(ewt) == {"tagger": sum(len(d) for d in ewt), "ner": ewt_tokens, "textcat": 0}
    mixed = ewt[:1] + b77[:3] + ewt[1:] + b77[3:]
    assert counts(mixed) == {"tagger": sum(len(d) for d in ewt), "ner": ewt_tokens, "textcat": 6}
    # no gradient reaches NER's output from the intent docs' tokens
    batch = nlp.featurize(b77)
    loss, n = nlp.losses(batch)["ner"]
    assert n == 0 and float(loss.detach()) == 0.0
    nlp.zero_grad()
    loss.backward() if loss.requires_grad else None
    assert all(p.grad is None or torch.all(p.grad == 0) for p in nlp.components["ner"].parameters())


# --- a two-corpus training run, killed and resumed ---------------------------------------------


def _train(out: Path, intents: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    corpora = (f"corpus.train=[{{name: ewt, path: {DEMO_DATA / 'train'}, dev: {DEMO_DATA / 'dev'}}}, "
               f"{{name: b77, path: {intents['train']}, dev: {intents['dev']}}}]")
    args = [sys.executable, "-m", "distnlp.cli.main", "train", corpora, "corpus.dev=null", "corpus.temperature=0.5",
            "corpus.max_length=60", "nlp.pipeline=[tagger,ner,textcat]", f"training.output_dir={out}", "encoder.width=32",
            "training.max_steps=12", "training.eval_frequency=4", "training.log_every=1", "training.max_eval_docs=3",
            "distributed.num_threads=1", *extra]
    return subprocess.run(args, capture_output=True, text=True)


def _steps(out: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if r["event"] == "step"}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, intents: dict[str, str]) -> Path:
    out = tmp_path_factory.mktemp("multi") / "run"
    done = _train(out, intents)
    assert done.returncode == 0, done.stderr
    return out


def test_scores_per_corpus_and_combined(straight: Path) -> None:
    evals = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    scores = evals[-1]["all_scores"]
    for key in ("tag_acc", "ents_f", "cats_score", "ewt/tag_acc", "ewt/ents_f", "b77/cats_score"):
        assert isinstance(scores[key], float), key
    assert "b77/tag_acc" not in scores and "ewt/cats_score" not in scores  # only what a corpus annotates
    assert scores["cats_score"] == scores["b77/cats_score"] and scores["tag_acc"] == scores["ewt/tag_acc"]
    assert set(evals[-1]["scores"]) == {"tag_acc", "ents_f", "ents_p", "ents_r", "cats_score"}  # combined: model-best's
    meta = json.loads((straight / "model-last" / "meta.json").read_text())
    assert meta["scores"]["b77/cats_score"] == scores["b77/cats_score"]
    # both corpora were trained on: every head had some loss
    steps = _steps(straight)
    assert all(any(r["losses"][name] > 0 for r in steps.values()) for name in ("tagger", "ner", "textcat"))


def test_killed_two_corpus_run_resumes_exactly(straight: Path, tmp_path: Path, intents: dict[str, str]) -> None:
    out = tmp_path / "b"
    assert _train(out, intents, "distributed.fail_at_step=10").returncode != 0
    resumed = _train(out, intents, "training.resume=true", "distributed.fail_at_step=10")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 8" in resumed.stdout
    a, b = _steps(straight), _steps(out)
    assert sorted(a) == sorted(b) == list(range(1, 13))
    for step in range(1, 13):
        assert b[step]["words"] == a[step]["words"], step
        for name, value in a[step]["losses"].items():
            assert abs(b[step]["losses"][name] - value) <= 1e-4 * max(1.0, abs(value)), (step, name)
