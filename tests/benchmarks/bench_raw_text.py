"""Whole pipelines on raw text, side by side: distnlp vs spaCy, one thread each, same texts.

    python tests/benchmarks/bench_raw_text.py --model runs/ewt_cnn/model-best \
        --spacy-model runs/spacy_ewt_cnn/model-best --gold en_ewt-ud-dev.conllu --seconds 20 --rounds 2

Every document of the gold CoNLL-U file becomes its raw text (scoring/conll18_raw.raw_texts: the
sentences' `# text` joined by spaces, paragraphs by blank lines). Each side runs in its own
process with one thread (alternating distnlp, spaCy, distnlp, ...), annotates every text once
to warm up, then annotates all texts again and again for `--seconds`, tokenizer included, and
reports words/s (the gold file's words per wall second and per CPU second). The distnlp side
also reports the share of that time spent in the tree search (mst_batch.decode_batch) and in the
parser's whole decode (arc scores, tree search, labels).

`--long-doc N` adds one document of N words without a single sentence boundary (the texts
lowercased, punctuation and newlines removed, repeated to N words) and reports each side's peak
RSS and seconds on it: no document may make a pipeline allocate without bound.

Prints one JSON object and writes it to --out. The spaCy side imports only spaCy.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _texts(work: Path) -> list[str]:
    return json.loads((work / "texts.json").read_text(encoding="utf8"))


def _timed(annotate: Any, texts: list[str], words: int, seconds: float, after_warmup: Any = None) -> dict[str, float]:
    annotate(texts)  # warm-up: caches, compiled code, allocator
    if after_warmup is not None:
        after_warmup()
    passes, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        annotate(texts)
        passes += 1
        wall = time.perf_counter() - wall0
        if wall >= seconds:
            break
    cpu = time.process_time() - cpu0
    return {"passes": passes, "wall_s": wall, "cpu_s": cpu, "words_per_s": passes * words / wall, "words_per_cpu_s": passes * words / cpu}


def side_distnlp(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import distnlp
    import distnlp.models.heads.parser as heads_parser
    import distnlp.models.mst_batch as mst_batch

    nlp = distnlp.load(args.model)
    texts, words = _texts(args.work), args.words
    if args.long_doc:
        return _long_doc(lambda t: list(nlp.pipe([t])), args)
    spent = {"tree_search": 0.0, "parser_decode": 0.0}

    def timing(name: str, fn: Any) -> Any:
        def wrapped(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapped

    mst_batch.decode_batch = timing("tree_search", mst_batch.decode_batch)
    heads_parser.BiaffineParserHead.decode = timing("parser_decode", heads_parser.BiaffineParserHead.decode)
    result = _timed(lambda ts: list(nlp.pipe(ts)), texts, words, args.seconds, after_warmup=lambda: spent.update(dict.fromkeys(spent, 0.0)))
    wall = result["wall_s"]
    result.update({"tree_search_share": spent["tree_search"] / wall, "parser_decode_share": spent["parser_decode"] / wall,
                   "pipeline": nlp.pipe_names, "threads": torch.get_num_threads()})
    return result


def side_spacy(args: argparse.Namespace) -> dict[str, Any]:
    import spacy

    nlp = spacy.load(args.spacy_model)
    if args.long_doc:
        nlp.max_length = 10**8
        return _long_doc(lambda t: nlp(t), args)
    return {**_timed(lambda ts: list(nlp.pipe(ts)), _texts(args.work), args.words, args.seconds), "pipeline": nlp.pipe_names}


def _long_doc(annotate: Any, args: argparse.Namespace) -> dict[str, Any]:
    text = (args.work / "long.txt").read_text(encoding="utf8")
    annotate("A short warm-up text. It has two sentences.")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    annotate(text)
    return {"words": len(text.split()), "seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": before / 1024}


def _side(name: str, args: argparse.Namespace, long_doc: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--side", name, "--work", str(args.work), "--model", args.model, "--spacy-model", args.spacy_model,
           "--gold", args.gold, "--seconds", str(args.seconds), "--words", str(args.words)] + (["--long-doc", str(args.long_doc)] if long_doc else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode:
        raise SystemExit(f"{name} side failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a saved distnlp pipeline")
    ap.add_argument("--spacy-model", required=True, help="a saved spaCy pipeline (the baseline)")
    ap.add_argument("--gold", required=True, help="a CoNLL-U file: its documents' raw text is annotated")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per side and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--long-doc", type=int, default=0, help="also one document of this many words without boundaries")
    ap.add_argument("--out", default=None)
    ap.add_argument("--side", choices=("distnlp", "spacy"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--words", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps((side_distnlp if args.side == "distnlp" else side_spacy)(args)))
        return

    from distnlp.scoring.conll18_raw import raw_texts, read_ud

    with tempfile.TemporaryDirectory() as tmp:
        args.work = Path(tmp)
        texts = [t for _, t in raw_texts(args.gold)]
        args.words = len(read_ud(args.gold).words)
        (args.work / "texts.json").write_text(json.dumps(texts), encoding="utf8")
        report: dict[str, Any] = {"gold": args.gold, "documents": len(texts), "gold_words": args.words, "rounds": []}
        for _ in range(args.rounds):
            report["rounds"].append({"distnlp": _side("distnlp", args), "spacy": _side("spacy", args)})
        d = [r["distnlp"] for r in report["rounds"]]
        s = [r["spacy"] for r in report["rounds"]]
        report["ratio_words_per_s"] = sum(x["words_per_s"] for x in d) / sum(x["words_per_s"] for x in s)
        report["ratio_words_per_cpu_s"] = sum(x["words_per_cpu_s"] for x in d) / sum(x["words_per_cpu_s"] for x in s)
        if args.long_doc:
            flat = re.sub(r"[^\w\s]", " ", " ".join(texts).lower()).split()
            words = (flat * (args.long_doc // max(len(flat), 1) + 1))[: args.long_doc]
            (args.work / "long.txt").write_text(" ".join(words), encoding="utf8")
            report["long_doc"] = {"distnlp": _side("distnlp", args, long_doc=True), "spacy": _side("spacy", args, long_doc=True)}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
