"""Conversion throughput on one core: full UD EWT train (+ UNER draft NER join) to Parquet.

    python tests/benchmarks/bench_convert.py [--repeat 3]

Prints one JSON line: words/s for reading CoNLL-U alone, reading + NER join, the whole
conversion (read + join + write shards + meta.json), and the raw-text tokenizer. Best of N runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from distnlp.data.convert import ConvertReport, join_ner, read_conllu, write_corpus
from distnlp.data.tokenizer import Tokenizer

SHARED = Path(os.environ.get("DISTNLP_SHARED_DATA", Path(__file__).parents[2].parent / "shared" / "data"))
CONLLU = SHARED / "ud-english-ewt" / "en_ewt-ud-train.conllu"
NER = SHARED / "uner-english-ewt" / "draft-0c7ce0d" / "en_ewt-ud-train.iob2"


def best_of(repeat: int, fn: Callable[[], int]) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the brief asks

    def read() -> int:
        return sum(len(d) for d in read_conllu(CONLLU))

    def read_join() -> int:
        return sum(len(d) for d in join_ner(read_conllu(CONLLU), NER, skip_invalid=True, report=ConvertReport()))

    def convert() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            report = ConvertReport()
            docs = join_ner(read_conllu(CONLLU, report=report), NER, skip_invalid=True, report=report)
            meta = write_corpus(docs, Path(tmp) / "out", sources=[CONLLU, NER], fmt="conllu", report=report)
            return int(meta["counts"]["words"])

    text = "\n".join(line[9:].rstrip("\n") for line in open(CONLLU, encoding="utf-8") if line.startswith("# text = "))

    def tokenize() -> int:
        return len(Tokenizer().tokenize(text)[0])  # fresh tokenizer: cold cache

    t_read, words = best_of(args.repeat, read)
    t_join, _ = best_of(args.repeat, read_join)
    t_conv, _ = best_of(args.repeat, convert)
    t_tok, tok_words = best_of(args.repeat, tokenize)
    print(json.dumps({
        "benchmark": "convert_ewt_train",
        "words": words,
        "read_conllu_words_per_s": round(words / t_read),
        "read_join_ner_words_per_s": round(words / t_join),
        "convert_total_s": round(t_conv, 3),
        "convert_words_per_s": round(words / t_conv),
        "tokenizer_words_per_s": round(tok_words / t_tok),
        "tokenizer_tokens": tok_words,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
