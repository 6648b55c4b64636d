"""A tiny saved pipeline (untrained: annotate's tests check plumbing, not accuracy) and mixed inputs."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.labels import pipeline_labels

PIPELINE = "nlp.pipeline=[tagger,morphologizer,parser,ner]"


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = compose_config([PIPELINE, "encoder.width=32"])
    torch.manual_seed(0)
    nlp = Pipeline(config, pipeline_labels(config, str(DEMO_DATA / "train")))
    path = tmp_path_factory.mktemp("model") / "model"
    nlp.to_disk(path)
    return path


def _sentences(docs: Iterable[Doc], n: int) -> list[Doc]:
    """The first n sentences of the docs, each a Doc of its own (short docs: fast tests)."""
    out: list[Doc] = []
    for doc in docs:
        starts = [i for i, s in enumerate(doc.sent_starts or [True]) if s] + [len(doc)]
        for i, (a, b) in enumerate(zip(starts, starts[1:])):
            out.append(Doc(words=doc.words[a:b], spaces=doc.spaces[a:b - 1] + [False], doc_id=f"{doc.doc_id}-s{i}"))
            if len(out) == n:
                return out
    raise AssertionError(f"fewer than {n} sentences")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """texts.txt: 12 lines, 2 to reject (empty, non-UTF-8); docs.jsonl: 6 lines, 3 to reject
    (malformed, no text, blank); corpus/: 9 docs of the demo dev set."""
    root = tmp_path_factory.mktemp("inputs")
    dev = _sentences(read_docs(DEMO_DATA / "dev"), 22)
    lines = [d.text.encode() for d in dev[:10]]
    lines.insert(3, b"")
    lines.insert(7, b"caf\xe9 au lait")  # Latin-1, not UTF-8
    (root / "texts.txt").write_bytes(b"\n".join(lines) + b"\n")
    jsonl = [
        json.dumps({"id": "a-1", "text": dev[10].text}), "{not json", json.dumps({"id": "a-3", "title": "no text"}),
        json.dumps({"text": dev[11].text}), "   ", json.dumps({"id": 42, "text": dev[12].text}),
    ]
    (root / "docs.jsonl").write_text("\n".join(jsonl) + "\n")
    write_corpus(dev[13:22], root / "corpus", fmt="conllu", sources=[])
    assert len(list(read_docs(root / "corpus"))) == 9
    return {"text": root / "texts.txt", "jsonl": root / "docs.jsonl", "corpus": root / "corpus"}
