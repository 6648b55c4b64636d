"""Streaming-read throughput on one core: Parquet row groups -> Docs (-> word batches).

    python tests/benchmarks/bench_read.py [CORPUS_DIR] [--words 1000000] [--repeat 3]

Without CORPUS_DIR it synthesizes a fully annotated corpus of about --words words (Zipfian
vocabulary, log-normal doc lengths around 20 words, several shards and row groups) in a temp
dir. Prints one JSON object; words/s is the best of --repeat passes.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distnlp.data.batching import batch_by_words
from distnlp.data.schema import CORPUS_SCHEMA, SCHEMA_VERSION
from distnlp.data.stream import DocStream, read_docs

TAGS = ["NN", "NNP", "IN", "DT", "JJ", "NNS", ",", ".", "VBD", "RB", "VB", "PRP", "CC", "VBZ", "VBP", "CD", "TO"]
POS = ["NOUN", "PROPN", "ADP", "DET", "ADJ", "PUNCT", "VERB", "ADV", "PRON", "CCONJ", "NUM", "AUX", "PART"]
DEPS = ["nsubj", "obj", "root", "det", "amod", "case", "nmod", "punct", "advmod", "obl", "conj", "cc", "compound"]
MORPHS = ["", "Number=Sing", "Number=Plur", "Mood=Ind|Tense=Past|VerbForm=Fin", "Definite=Def|PronType=Art"]


def synthesize(root: Path, n_words: int, docs_per_group: int = 2000, groups_per_shard: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)], dtype=object)
    lengths = np.clip(rng.lognormal(mean=2.9, sigma=0.6, size=n_words // 10), 1, 200).astype(int)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_words) + 1]
    total, doc, shard, shards_meta = 0, 0, 0, []
    while doc < len(lengths):
        name = f"shard-{shard:05d}.parquet"
        rows_in, words_in = 0, 0
        with pq.ParquetWriter(root / name, CORPUS_SCHEMA) as writer:
            for _ in range(groups_per_shard):
                group = lengths[doc:doc + docs_per_group]
                if not len(group):
                    break
                rows = []
                for n in group.tolist():
                    ids = np.minimum(rng.zipf(1.3, n), 50_000) - 1
                    words = vocab[ids].tolist()
                    spaces = (rng.random(n) < 0.85).tolist()
                    rows.append({
                        "doc_id": f"d{doc + len(rows)}", "text": "".join(w + (" " if s else "") for w, s in zip(words, spaces)),
                        "words": words, "spaces": spaces, "sent_starts": [i == 0 for i in range(n)],
                        "tags": [TAGS[i % len(TAGS)] for i in ids], "pos": [POS[i % len(POS)] for i in ids],
                        "morphs": [MORPHS[i % len(MORPHS)] for i in ids], "lemmas": [w.lower() for w in words],
                        "deps": [DEPS[i % len(DEPS)] for i in ids], "heads": rng.integers(0, n, n).tolist(),
                        "ents": [{"start": 0, "end": 1, "label": "ORG"}] if n > 3 else [], "cats": None,
                    })
                writer.write_table(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA), row_group_size=len(rows))
                doc += len(group)
                rows_in += len(group)
                words_in += int(group.sum())
        shards_meta.append({"file": name, "rows": rows_in, "words": words_in})
        total += words_in
        shard += 1
    meta = {"schema_version": SCHEMA_VERSION, "counts": {"docs": doc, "sentences": doc, "words": total},
            "labels": {}, "shards": shards_meta}
    (root / "meta.json").write_text(json.dumps(meta))


def timed(fn, repeat: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?")
    ap.add_argument("--words", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = None
    if args.corpus is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name)
        synthesize(path, args.words)
    else:
        path = Path(args.corpus)

    def stream_words(columns: list[str] | None = None) -> int:
        return sum(len(d) for d in DocStream(path, seed=1, columns=columns))

    def batched_words() -> int:
        return sum(len(d) for b in batch_by_words(DocStream(path, seed=1), size=3000) for d in b)

    def stored_words() -> int:
        return sum(len(d) for d in read_docs(path))

    results: dict[str, object] = {"corpus": str(path) if tmp is None else "synthetic", "pid_cpus": len(os.sched_getaffinity(0))}
    for name, fn in [
        ("stream_all_columns", stream_words),
        ("stream_words_only", lambda: stream_words(["words"])),
        ("stream_plus_batch_by_words", batched_words),
        ("read_docs_stored_order", stored_words),
    ]:
        secs, words = timed(fn, args.repeat)
        results[name] = {"words": words, "seconds": round(secs, 4), "words_per_s": round(words / secs)}
    print(json.dumps(results, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
