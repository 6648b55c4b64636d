"""What corpus integrity costs on streaming reads: row-group content hashes (meta.json) and
Parquet page checksums, against the same reads without them, side by side in one process.

    python tests/benchmarks/bench_integrity.py [--copies 5] [--repeat 3]

The corpus is the demo train docs written `--copies` times by the converter's writer (~0.2M
words each). Each mode reads every doc (all columns) `--repeat` times; the best pass counts.
Modes: `checked` (as shipped), `no_hash` (the row-group hash check skipped), `neither` (also
page checksums not verified). Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq

from distnlp.cli.compose import DEMO_DATA
from distnlp.data import shards
from distnlp.data.convert import write_corpus
from distnlp.data.stream import read_docs


def _read_all(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    words = sum(len(d.words) for d in read_docs(path))
    return words, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        docs = list(read_docs(DEMO_DATA / "train"))
        for i, d in enumerate(docs):
            d.doc_id = f"d{i}"
        many = [d for _ in range(args.copies) for d in docs]
        path = Path(tmp) / "corpus"
        write_corpus(many, path, fmt="bench")
        real_file = pq.ParquetFile

        def unchecked_file(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            kw["page_checksum_verification"] = False
            return real_file(*a, **kw)

        modes = {
            "checked": [],
            "no_hash": [mock.patch.object(shards.CorpusInfo, "_verify_unit", lambda *a: None)],
            "neither": [mock.patch.object(shards.CorpusInfo, "_verify_unit", lambda *a: None), mock.patch.object(shards.pq, "ParquetFile", unchecked_file)],
        }
        best: dict[str, float] = {}
        words = 0
        for _ in range(args.repeat):
            for mode, patches in modes.items():  # interleaved: load on the machine falls on all alike
                for p in patches:
                    p.start()
                try:
                    words, seconds = _read_all(path)
                finally:
                    for p in patches:
                        p.stop()
                best[mode] = min(best.get(mode, float("inf")), seconds)
    rates = {m: words / s for m, s in best.items()}
    print(f"{'mode':10} {'words/s':>12} {'vs neither':>10}")
    for mode, rate in rates.items():
        print(f"{mode:10} {rate:12,.0f} {rate / rates['neither']:10.3f}")
    print(json.dumps({"words": words, "words_per_s": rates, "cost_vs_neither": 1 - rates["checked"] / rates["neither"]}))


if __name__ == "__main__":
    main()
