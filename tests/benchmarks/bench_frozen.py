"""Frozen shared layer vs trained (issue 3): training words/s of the shared CNN pipeline with
every listener at grad_factor 1 vs every listener at 0 (the shared layer then runs under
no_grad and no backward is spent on it). Both sides alternate in one run.

    python tests/benchmarks/bench_frozen.py [--corpus corpus/ewt-train] [--seconds 20] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def measure(corpus: str, factor: float, seconds: float, extra: list[str]) -> float:
    from distnlp.cli.compose import compose_config
    from distnlp.data.stream import DocStream
    from distnlp.registry import resolve
    from distnlp.training.loop import build_pipeline, seed_everything
    from distnlp.training.optim import build_optimizer
    from distnlp.training.pipeline_objective import train_step

    overrides = [f"corpus.train={corpus}", *[f"components.{c}.grad_factor={factor}" for c in ("tagger", "morphologizer", "parser", "lemmatizer", "ner")], *extra]
    config = compose_config(overrides)
    seed_everything(0)
    nlp = build_pipeline(config)
    nlp.train()
    optimizer, _ = build_optimizer(nlp, config["training"]["optimizer"])
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 1000})
    batches = batcher(iter(DocStream(corpus, infinite=True, seed=0)))
    for _ in range(5):  # warm-up (hash caches, allocator)
        train_step(nlp, [nlp.featurize(next(batches))], step=10, optimizer=optimizer, grad_clip=1.0)
    words, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        docs = next(batches)
        result = train_step(nlp, [nlp.featurize(docs)], step=10, optimizer=optimizer, grad_clip=1.0)
        words += result.words
    return words / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    default = ROOT / "corpus" / "ewt-train"
    parser.add_argument("--corpus", default=str(default if default.exists() else ROOT / "distnlp" / "demo_data" / "train"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder=tiny_transformer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trained, frozen = [], []
    for _ in range(args.rounds):
        trained.append(measure(args.corpus, 1.0, args.seconds, args.overrides))
        frozen.append(measure(args.corpus, 0.0, args.seconds, args.overrides))
    result = {
        "date": time.strftime("%Y-%m-%d"), "corpus": args.corpus, "threads": args.threads, "overrides": args.overrides,
        "loadavg": os.getloadavg(), "trained_words_per_s": trained, "frozen_words_per_s": frozen,
        "speedup": (sum(frozen) / len(frozen)) / (sum(trained) / len(trained)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
