"""Start-up label inventories vs corpus size: meta.json only (now) against the full scans training
used to make on every rank at every start (`lemma_tree_labels`, and `morph_labels` for a corpus
without stored morphologizer labels; both kept for `distnlp corpus-labels`).

    python tests/benchmarks/bench_startup.py [--words 0.2M,10M,50M] [--work DIR] [--skip-scan-above 60M]

The ~0.2M-word corpus is the shipped demo train set written again by the converter's writer
(`write_corpus`, which counts the edit trees in its one pass); larger ones list that shard k
times (hard links, byte-identical copies) with meta.json's counts and tree counts times k, which
is what the writer stores for the same docs written k times. Each measurement runs in a fresh
Python process: wall seconds of the call, peak RSS (ru_maxrss) and, to subtract, the RSS of the
imports alone. Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("imports", "meta", "scan_lemma", "scan_morph")


def parse_words(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def build_base(out: Path) -> dict[str, Any]:
    """The demo train docs through the converter's writer (shards + meta.json with the inventories)."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.data.convert import write_corpus
    from distnlp.data.stream import read_docs

    t0 = time.perf_counter()
    meta = write_corpus(read_docs(DEMO_DATA / "train"), out, fmt="conllu", sources=[], shard_size=1_000_000)
    meta["_write_s"] = time.perf_counter() - t0
    return meta


def build_repeated(base: Path, base_meta: dict[str, Any], out: Path, copies: int) -> None:
    """`copies` times the base corpus: its shard listed again under new names, counts scaled."""
    out.mkdir(parents=True, exist_ok=True)
    (shard,) = base_meta["shards"]
    shards = []
    for i in range(copies):
        name = f"shard-{i:05d}.parquet"
        try:
            os.link(base / shard["file"], out / name)
        except OSError:
            (out / name).write_bytes((base / shard["file"]).read_bytes())
        shards.append({**shard, "file": name})
    meta = {k: v for k, v in base_meta.items() if not k.startswith("_")}
    meta["shards"] = shards
    meta["counts"] = {k: v * copies for k, v in base_meta["counts"].items()}
    meta["annotated"] = {k: v * copies for k, v in base_meta["annotated"].items()}
    meta["missing_tokens"] = {k: v * copies for k, v in base_meta["missing_tokens"].items()}
    meta["lemma_trees"] = {tree: n * copies for tree, n in base_meta["lemma_trees"].items()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


CHILD = r"""
import hashlib, json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
from distnlp.cli.compose import compose_config
from distnlp.training import labels as L
config = compose_config([])  # the default pipeline: every component
min_tree_freq = int(config["components"]["lemmatizer"].get("min_tree_freq", 3))
t0 = time.perf_counter()
if mode == "imports":
    lemma = None
elif mode == "meta":
    lemma = L.pipeline_labels(config, path)["lemmatizer"]
elif mode == "scan_lemma":
    lemma = L.lemma_tree_labels(path, min_tree_freq)
else:
    lemma = None
    L.morph_labels(path)
seconds = time.perf_counter() - t0
digest = None if lemma is None else hashlib.sha256(json.dumps(lemma).encode()).hexdigest()[:12]
print(json.dumps({"seconds": seconds, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "lemma_labels": digest}))
"""


def measure(mode: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{mode} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", default="0.2M,10M,50M", help="corpus sizes, comma-separated (rounded to whole copies of the demo)")
    parser.add_argument("--work", type=Path, default=None, help="where the corpora go (default: a temp dir, removed after)")
    parser.add_argument("--skip-scan-above", default="1000M", help="no full scans on corpora larger than this")
    parser.add_argument("--modes", default=",".join(MODES), help=f"what to measure, comma-separated (of {', '.join(MODES)})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        base = work / "base"
        base_meta = build_base(base) if not (base / "meta.json").exists() else json.loads((base / "meta.json").read_text())
        rows = []
        for target in (parse_words(w) for w in args.words.split(",")):
            copies = max(1, round(target / base_meta["counts"]["words"]))
            path = base if copies == 1 else work / f"x{copies}"
            t0 = time.perf_counter()
            if copies > 1 and not (path / "meta.json").exists():
                build_repeated(base, base_meta, path, copies)
            built_s = time.perf_counter() - t0
            row: dict[str, Any] = {"words": base_meta["counts"]["words"] * copies, "copies": copies, "build_s": round(built_s, 2),
                                   "meta_json_bytes": (path / "meta.json").stat().st_size}
            scan = row["words"] <= parse_words(args.skip_scan_above)
            for mode in args.modes.split(","):
                if mode.startswith("scan") and not scan:
                    continue
                row[mode] = measure(mode, path)
            if "scan_lemma" in row and "meta" in row:
                assert row["meta"]["lemma_labels"] == row["scan_lemma"]["lemma_labels"], "stored and scanned edit-tree labels differ"
            rows.append(row)
            print_row(row, header=len(rows) == 1)
        print(json.dumps({"base_write_s": base_meta.get("_write_s"), "rows": rows}))


def print_row(row: dict[str, Any], header: bool) -> None:
    """One line per corpus; a mode not measured shows as -."""
    if header:
        print(f"{'words':>12} {'meta.json':>10} | {'now: pipeline_labels':>22} | {'before: lemma scan':>20} | {'before: morph scan':>20} | imports RSS")
        print(f"{'':>12} {'KiB':>10} | {'s':>8} {'peak RSS MiB':>13} | {'s':>7} {'peak MiB':>12} | {'s':>7} {'peak MiB':>12} | MiB")
    def cell(mode: str, width: int) -> str:
        m = row.get(mode)
        return f"{'-':>7} {'-':>{width}}" if m is None else f"{m['seconds']:7.3f} {m['maxrss_mib']:{width}.0f}"
    imports = row.get("imports")
    print(f"{row['words']:>12,} {row['meta_json_bytes'] / 1024:>10.0f} | {cell('meta', 13):>22} | "
          f"{cell('scan_lemma', 12)} | {cell('scan_morph', 12)} | {'-' if imports is None else round(imports['maxrss_mib'])}", flush=True)


if __name__ == "__main__":
    main()
