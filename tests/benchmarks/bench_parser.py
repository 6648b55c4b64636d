"""Inference words/s of the CNN pipeline with and without the dependency parser (issue 12).

The same pipeline is measured twice per round, once with its parser and once with the parser
removed, on copies of the corpus's docs (gold sentence starts kept: the parser parses within
them). With --model a trained pipeline is loaded; otherwise an untrained one is built from the
config with its heads randomised, which is the decoder's harder case (a trained parser's
greedy heads are mostly a tree already, so MST decoding takes its fast path).

    python tests/benchmarks/bench_parser.py [--model training/ewt_cnn/model-best] [--corpus corpus/ewt-dev]
        [--seconds 20] [--rounds 2] [--threads 1] [overrides ...]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def build(corpus: str, model: str | None, overrides: list[str]) -> Any:
    import distnlp
    from distnlp.cli.compose import compose_config
    from distnlp.training.loop import build_pipeline, seed_everything

    if model:
        return distnlp.load(model)
    seed_everything(0)
    nlp = build_pipeline(compose_config([f"corpus.train={corpus}", *overrides]))
    with torch.no_grad():  # scorers start at zero (uniform): give the decoder real choices
        for p in nlp.components.parameters():
            p.normal_(0.0, 0.5)
    return nlp


def without_parser(nlp: Any) -> Any:
    other = copy.deepcopy(nlp)
    for name in [n for n, c in other.components.items() if c.factory == "parser"]:
        del other.components[name]
        if name in other.listening:
            other.listening.remove(name)
    return other


def words_per_s(nlp: Any, docs: list, seconds: float, batch_size: int) -> float:
    nlp.eval()
    list(nlp.pipe([nlp.eval_input(d) for d in docs[:batch_size]], batch_size=batch_size))  # warm-up
    words, start = 0, time.perf_counter()
    while True:
        for doc in nlp.pipe((nlp.eval_input(d) for d in docs), batch_size=batch_size):
            words += len(doc)
        if time.perf_counter() - start >= seconds:
            return words / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    default = ROOT / "corpus" / "ewt-dev"
    parser.add_argument("--corpus", default=str(default if default.exists() else ROOT / "distnlp" / "demo_data" / "dev"))
    parser.add_argument("--model", default=None, help="a trained pipeline directory (default: an untrained one from the config)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-docs", type=int, default=0, help="use only the first N docs (0 = all)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder.width=32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from distnlp.data.stream import read_docs

    docs = list(read_docs(args.corpus))
    if args.max_docs:
        docs = docs[: args.max_docs]
    nlp = build(args.corpus, args.model, args.overrides)
    if "parser" not in {c.factory for c in nlp.components.values()}:
        raise SystemExit(f"the pipeline has no parser (components: {nlp.pipe_names})")
    bare = without_parser(nlp)
    with_p, without_p = [], []
    for _ in range(args.rounds):
        with_p.append(words_per_s(nlp, docs, args.seconds, args.batch_size))
        without_p.append(words_per_s(bare, docs, args.seconds, args.batch_size))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    result = {
        "date": time.strftime("%Y-%m-%d"), "corpus": args.corpus, "model": args.model, "trained": bool(args.model),
        "threads": args.threads, "batch_size": args.batch_size, "docs": len(docs), "words": sum(len(d) for d in docs),
        "pipeline": nlp.pipe_names, "overrides": args.overrides, "loadavg": os.getloadavg(),
        "with_parser_words_per_s": with_p, "without_parser_words_per_s": without_p,
        "parser_slowdown": mean(without_p) / mean(with_p),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
