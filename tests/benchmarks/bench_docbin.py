"""spaCy DocBin throughput on one core: full UD EWT train as a .spacy file, read and converted
by distnlp, against reading the same corpus from CoNLL-U in the same run (the baseline).

    python tests/benchmarks/bench_docbin.py [--repeat 3]

The .spacy file is made by distnlp itself (convert the CoNLL-U, then `export`), so both inputs
hold the same documents. Prints one JSON line of words/s (best of N runs). Needs the spacy extra.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import spacy  # noqa: F401  (imported here so no timing below includes importing it)

from distnlp.data.convert import ConvertReport, read_conllu, write_corpus
from distnlp.data.convert.docbin import read_docbin
from distnlp.data.stream import read_docs
from distnlp.interop.docbin_out import write_docbin

SHARED = Path(os.environ.get("DISTNLP_SHARED_DATA", Path(__file__).parents[2].parent / "shared" / "data"))
CONLLU = SHARED / "ud-english-ewt" / "en_ewt-ud-train.conllu"


def best_of(repeat: int, fn) -> tuple[float, int]:  # type: ignore[no-untyped-def]
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
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        corpus, spacy_file = Path(tmp) / "corpus", Path(tmp) / "train.spacy"
        write_corpus(read_conllu(CONLLU), corpus, fmt="conllu", sources=[CONLLU])
        t = time.perf_counter()
        write_docbin(read_docs(corpus), spacy_file)
        export_s = time.perf_counter() - t
        words = sum(len(d) for d in read_docs(corpus))
        conllu_s, _ = best_of(args.repeat, lambda: sum(len(d) for d in read_conllu(CONLLU)))
        docbin_s, _ = best_of(args.repeat, lambda: sum(len(d) for d in read_docbin(spacy_file)))
        n = [0]

        def convert() -> int:
            n[0] += 1
            write_corpus(read_docbin(spacy_file, report=ConvertReport()), Path(tmp) / f"out{n[0]}", fmt="spacy", sources=[spacy_file])
            return words

        convert_s, _ = best_of(args.repeat, convert)
    print(json.dumps({
        "words": words,
        "read_conllu_wps": round(words / conllu_s), "read_docbin_wps": round(words / docbin_s),
        "convert_docbin_wps": round(words / convert_s), "export_docbin_wps": round(words / export_s),
        "machine": platform.machine(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
