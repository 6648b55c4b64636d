"""A shared embedding vs one embedding per component (issue 16; spaCy's claim for shared layers:
smaller and faster, less modular), measured for the same five components.

Trains the UD pipeline (tagger, morphologizer, parser, lemmatizer, ner) twice on the same corpus
and budget, once with every head listening to one CNN (`pipeline=shared`) and once with a copy
of the CNN per head (`pipeline=independent`), then reports for each: parameters, model size on
disk, training words/s (words over the time between evaluations, evaluation excluded),
inference words/s (both models timed in alternating rounds) and the dev scores.

    python tests/benchmarks/bench_shared_vs_independent.py --out runs/shared_vs_independent \
        [--max-steps 1500] [--threads 1] [--seconds 20] [--rounds 3] [overrides ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SETUPS = ("shared", "independent")
PIPELINE = "nlp.pipeline=[tagger,morphologizer,parser,lemmatizer,ner]"


def train(setup: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    overrides = [f"pipeline={setup}", PIPELINE, f"training.output_dir={out}", f"training.max_steps={args.max_steps}",
                 f"training.eval_frequency={args.eval_frequency}", f"distributed.num_threads={args.threads}",
                 "training.log_every=1", "training.curves=false", *args.overrides]
    if args.train_corpus:
        overrides.append(f"corpus.train={args.train_corpus}")
    if args.dev_corpus:
        overrides.append(f"corpus.dev={args.dev_corpus}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "train", *overrides], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{setup}: training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("event") == "step"]
    evals = [r for r in records if r.get("event") == "eval"]
    # Every step is logged (log_every=1) with its words and where its time went: data, forward +
    # backward, reduce, update. Evaluation and checkpoints are outside these.
    words = sum(r["words"] for r in steps)
    seconds = sum(sum(r["time"].values()) for r in steps)
    params = next(int(line.split("parameters:")[1].replace(",", "").strip()) for line in proc.stdout.splitlines() if "parameters:" in line)
    model = out / "model-last"
    return {
        "parameters": params,
        "model_bytes": sum(p.stat().st_size for p in model.rglob("*") if p.is_file()),
        "train_words_per_s": words / max(seconds, 1e-9),
        "train_wall_s": wall,
        "scores": {k: v for k, v in evals[-1]["all_scores"].items() if isinstance(v, (int, float))},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="a new directory for the two runs")
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--eval-frequency", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0, help="inference: seconds per model per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-corpus", default=None, help="default: the config's corpus.train")
    parser.add_argument("--dev-corpus", default=None, help="default: the config's corpus.dev; also the inference texts")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. corpus=ewt")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import distnlp
    from distnlp.cli.compose import compose_config
    from distnlp.data.stream import read_docs
    from tests.benchmarks.bench_parser import words_per_s

    out = Path(args.out)
    results = {setup: train(setup, out / setup, args) for setup in SETUPS}
    dev = args.dev_corpus or compose_config(list(args.overrides))["corpus"]["dev"]
    docs = list(read_docs(str(dev if Path(dev).is_absolute() else ROOT / dev)))
    models = {setup: distnlp.load(out / setup / "model-last") for setup in SETUPS}
    rates: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    for _ in range(args.rounds):  # alternating rounds: load drifts hit both alike
        for setup in SETUPS:
            rates[setup].append(words_per_s(models[setup], docs, args.seconds, args.batch_size))
    for setup in SETUPS:
        results[setup]["infer_words_per_s"] = sorted(rates[setup])[len(rates[setup]) // 2]
        results[setup]["infer_rounds"] = rates[setup]
    shared, indep = results["shared"], results["independent"]
    results["ratios_shared_over_independent"] = {
        key: shared[key] / max(indep[key], 1e-9) for key in ("parameters", "model_bytes", "train_words_per_s", "infer_words_per_s")
    }
    results["settings"] = {"max_steps": args.max_steps, "threads": args.threads, "docs": len(docs), "overrides": args.overrides}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
