"""`Pipeline.pipe` batches by a padded-word budget over length-sorted windows, and still yields
every doc in input order with the same annotations as predicting each doc alone."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.data.stream import read_docs
from distnlp.pipeline.budget import budgeted_batches
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.labels import pipeline_labels


def _annotations(doc: Any) -> tuple[Any, ...]:
    return (doc.words, doc.tags, doc.pos, doc.morphs, doc.heads, doc.deps, doc.ent_spans)


@pytest.fixture(scope="module")
def nlp_and_texts() -> tuple[Pipeline, list[str]]:
    from distnlp.cli.compose import compose_config

    config = compose_config(["nlp.pipeline=[tagger,morphologizer,parser,ner]", "encoder.width=32"])
    nlp = Pipeline(config, pipeline_labels(config, str(DEMO_DATA / "train")))
    nlp.eval()
    texts = [d.text for d in read_docs(DEMO_DATA / "dev")][:40]
    return nlp, texts


def test_budgeted_batches_respect_budget_and_sort_by_length() -> None:
    lengths = [5, 40, 3, 3, 12, 100, 7, 40]
    batches = budgeted_batches(lengths, max_words=50, max_docs=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every doc once
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 50
    assert [5] in batches  # the 100-word doc (index 5) is alone, not cut
    assert batches[0] == [2, 3, 0]  # ties keep input order


def test_pipe_keeps_order_and_equals_one_doc_at_a_time(nlp_and_texts: tuple[Pipeline, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    nlp, texts = nlp_and_texts
    alone = [_annotations(nlp(t)) for t in texts]
    sizes: list[list[int]] = []
    predict = nlp.predict
    monkeypatch.setattr(nlp, "predict", lambda docs: (sizes.append([len(d) for d in docs]), predict(docs))[1])
    docs = list(nlp.pipe(iter(texts), batch_size=8, max_words=300, window=16))
    assert [d.text for d in docs] == texts
    assert [_annotations(d) for d in docs] == alone
    assert sum(len(s) for s in sizes) == len(texts)
    for s in sizes:
        assert len(s) <= 8 and (len(s) == 1 or max(s) * len(s) <= 300)
        assert s == sorted(s)  # length-sorted within the batch


def test_sorting_cuts_padding_against_doc_count_batches(nlp_and_texts: tuple[Pipeline, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    nlp, texts = nlp_and_texts
    padded: list[int] = []
    predict = nlp.predict
    monkeypatch.setattr(nlp, "predict", lambda docs: (padded.append(max(len(d) for d in docs) * len(docs)), predict(docs))[1])
    list(nlp.pipe(texts, batch_size=8, max_words=10**9, window=len(texts)))
    sorted_cost = sum(padded)
    lengths = [len(nlp.make_doc(t)) for t in texts]
    unsorted_cost = sum(max(lengths[i:i + 8]) * len(lengths[i:i + 8]) for i in range(0, len(lengths), 8))
    assert sorted_cost < unsorted_cost
