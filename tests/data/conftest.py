"""Small synthetic corpora in the converter's layout: shard-NNNNN.parquet + meta.json."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distnlp.data.schema import CORPUS_SCHEMA, SCHEMA_VERSION

WORDS = ["the", "cat", "sat", "on", "a", "mat", ".", "New", "York", "is", "big", ",", "and", "Ünïcode"]
TAGS = ["DT", "NN", "VBD", "IN", "NNP", "."]


def make_row(i: int, n_words: int, rnd: random.Random) -> dict[str, Any]:
    """One doc row; each annotation is present or null at random (partial annotation)."""
    words = [rnd.choice(WORDS) for _ in range(n_words)]
    spaces = [rnd.random() < 0.8 for _ in range(n_words)]

    def maybe(value: Any) -> Any:
        return value if rnd.random() < 0.7 else None

    ents = None
    if n_words >= 2 and rnd.random() < 0.7:
        ents = [{"start": 0, "end": 2, "label": rnd.choice(["GPE", "ORG"])}] if rnd.random() < 0.6 else []
    return {
        "doc_id": f"doc-{i}",
        "text": "".join(w + (" " if s else "") for w, s in zip(words, spaces)),
        "words": words,
        "spaces": spaces,
        "sent_starts": maybe([j == 0 for j in range(n_words)]),
        "tags": maybe([rnd.choice(TAGS) for _ in words]),
        "pos": maybe([rnd.choice(["DET", "NOUN", "VERB"]) for _ in words]),
        "morphs": maybe(["Number=Sing" if rnd.random() < 0.5 else "" for _ in words]),
        "lemmas": maybe([w.lower() for w in words]),
        "deps": maybe([rnd.choice(["nsubj", "obj", "ROOT"]) for _ in words]),
        "heads": maybe([rnd.randrange(n_words) for _ in words]),
        "ents": ents,
        "cats": maybe({"POS": 0.25, "NEG": 0.75} if rnd.random() < 0.5 else {"POS": 1.0}),
    }


def write_corpus(
    root: Path,
    layout: list[list[int]],
    seed: int = 0,
    min_words: int = 1,
    max_words: int = 12,
    write_meta: bool = True,
) -> list[dict[str, Any]]:
    """`layout[s]` lists the row-group sizes of shard s. Returns every row in stored order."""
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    shards_meta = []
    for s, groups in enumerate(layout):
        name = f"shard-{s:05d}.parquet"
        with pq.ParquetWriter(root / name, CORPUS_SCHEMA) as writer:
            shard_rows = []
            for size in groups:
                group = [make_row(len(rows) + len(shard_rows) + k, rnd.randint(min_words, max_words), rnd) for k in range(size)]
                shard_rows.extend(group)
                writer.write_table(pa.Table.from_pylist(group, schema=CORPUS_SCHEMA), row_group_size=max(1, size))
        rows.extend(shard_rows)
        shards_meta.append({"file": name, "rows": len(shard_rows), "words": sum(len(r["words"]) for r in shard_rows)})
    if write_meta:
        meta = {
            "schema_version": SCHEMA_VERSION,
            "counts": {"docs": len(rows), "sentences": len(rows), "words": sum(len(r["words"]) for r in rows)},
            "labels": {"tags": TAGS},
            "shards": shards_meta,
        }
        (root / "meta.json").write_text(json.dumps(meta))
    return rows


@pytest.fixture
def small_corpus(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path / "corpus"
    rows = write_corpus(root, [[5, 3, 7], [1], [4, 4], [6, 2, 2, 1]], seed=1)
    return root, rows


@pytest.fixture
def corpus_writer() -> Any:
    """`write_corpus` as a fixture (test modules here are not a package, so no relative imports)."""
    return write_corpus


@pytest.fixture
def row_maker() -> Any:
    return make_row
