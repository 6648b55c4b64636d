"""Small real corpora (cut from the shipped EWT+UNER demo) and configs for pipeline tests."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.config import validate_config
from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.stream import read_docs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Two busy-waiting OpenMP threads on a shared 2-core machine crawl; one thread is steady.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cut_corpus(out: Path, n_docs: int, split: str = "train", max_words: int = 10_000) -> Path:
    docs = [d for d in read_docs(DEMO_DATA / split) if len(d) <= max_words][:n_docs]
    write_corpus(docs, out, fmt="conllu", sources=[])
    return out


def first_sentences(doc: Doc, n: int) -> Doc:
    """The doc cut after its first n sentences (annotations sliced along)."""
    starts = [i for i, s in enumerate(doc.sent_starts or []) if s] + [len(doc)]
    end = starts[min(n, len(starts) - 1)]
    cut = lambda col: None if col is None else list(col[:end])  # noqa: E731
    return Doc(
        words=doc.words[:end], spaces=doc.spaces[:end - 1] + [False], doc_id=doc.doc_id,
        sent_starts=cut(doc.sent_starts), tags=cut(doc.tags), pos=cut(doc.pos), morphs=cut(doc.morphs),
        lemmas=cut(doc.lemmas), deps=cut(doc.deps), heads=None if doc.heads is None else [h if h < end else i for i, h in enumerate(doc.heads[:end])],
        ent_spans=None if doc.ent_spans is None else [e for e in doc.ent_spans if e[1] <= end],
    )


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short EWT docs (the first sentences of demo docs) with tags, pos, morphs and entities."""
    root = tmp_path_factory.mktemp("tiny")
    cut = [first_sentences(d, 3) for d in read_docs(DEMO_DATA / "train")]
    docs = [d for d in cut if d.ent_spans and 15 <= len(d) <= 70][:4]
    assert len(docs) == 4
    write_corpus(docs, root / "corpus", fmt="conllu", sources=[])
    return root / "corpus"


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    made = []

    def make(*overrides: str, train: Path | None = None, dev: Path | None = None) -> dict[str, Any]:
        # A fresh output directory per config: a run refuses a directory that holds another run.
        made.append(1)
        out = tmp_path / ("out" if len(made) == 1 else f"out{len(made)}")
        base = [f"training.output_dir={out}", "training.dropout=0.0"]
        if train is not None:
            base.append(f"corpus.train={train}")
            base.append(f"corpus.dev={dev or train}")
        config = compose_config(base + list(overrides))
        validate_config(config)
        return config

    return make
