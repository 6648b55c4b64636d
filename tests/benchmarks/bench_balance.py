"""Balanced replicas (issue 25, item 1), run on purpose, not in CI.

  words:  per step, the words each of N ranks' batches hold (the real streams and batcher, no
          model): the slowest rank's excess over the mean, max/mean - 1, is the share of a step
          the average rank waits in the all-reduce when compute follows words. Whole docs vs
          docs cut at sentence boundaries (corpus.split_length).
  train:  the real training loop on N gloo ranks (CPU, 1 thread each), per rank and step the
          all-reduce wait and the compute time, whole docs vs cut docs, in one run.

    python tests/benchmarks/bench_balance.py --mode words --corpus corpus/ewt-train
    python tests/benchmarks/bench_balance.py --mode train --ranks 2 --steps 60
    python tests/benchmarks/bench_balance.py --mode train --ranks 4 --steps 60

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def step_words(corpus: str, ranks: int, rank_words: int, split: int, steps: int, seed: int = 0,
               lengths: list[list[int]] | None = None) -> list[list[int]]:
    """Words per rank for each step while every rank has a batch (the default batcher, fixed size);
    `lengths` collects each step's document lengths, all ranks together."""
    from distnlp.data.batching import batch_by_words
    from distnlp.data.stream import DocStream
    from distnlp.training.batches import ResumableBatches

    replicas = [ResumableBatches(DocStream(corpus, rank=r, world_size=ranks, seed=seed), partial(batch_by_words, size=rank_words, tolerance=0.2),
                                 shuffle_words=1_000_000, split_length=split) for r in range(ranks)]
    out = []
    for _ in range(steps):
        batches = [r.take() for r in replicas]
        if not all(batches):
            break  # the epoch's last steps: some ranks are done
        out.append([sum(len(d) for d in b) for b in batches])
        if lengths is not None:
            lengths.append([len(d) for b in batches for d in b])
    return out


def largest_first(lengths: list[int], ranks: int) -> list[int]:
    """Words per rank if the step's documents were dealt out largest first onto the least loaded
    rank (what a per-step plan that moves documents between ranks could do)."""
    loads = [(0, r) for r in range(ranks)]
    for n in sorted(lengths, reverse=True):
        load, r = heapq.heappop(loads)
        heapq.heappush(loads, (load + n, r))
    return [load for load, _ in loads]


def excess(per_step: list[list[int]]) -> float:
    """Mean over steps of max/mean - 1."""
    return statistics.mean(max(w) / statistics.mean(w) - 1 for w in per_step)


def words_mode(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for ranks in args.ranks_list:
        for split in (0, args.split):
            lengths: list[list[int]] = []
            per_step = step_words(args.corpus, ranks, args.batch // ranks, split, args.steps, lengths=lengths)
            rows.append({"ranks": ranks, "rank_words": args.batch // ranks, "split_length": split, "steps": len(per_step),
                         "slowest_over_mean": round(excess(per_step), 4),
                         "if_moved_largest_first": round(excess([largest_first(l, ranks) for l in lengths]), 4),
                         "words_per_step": round(statistics.mean(sum(w) for w in per_step))})
    return {"mode": "words", "corpus": args.corpus, "rows": rows}


def _rank(rank: int, world: int, port: int, out: str, args: dict[str, Any]) -> None:
    import distnlp.training.engine as engine
    from distnlp.cli.compose import compose_config
    from distnlp.training.env import WorkerEnv
    from distnlp.training.loop import run_worker

    times: list[list[float]] = []

    def timed(objective: Any, subs: Any, **kw: Any) -> Any:
        result = step(objective, subs, **kw)
        times.append([result.time_compute, result.time_reduce, float(sum(objective.words(s) for s in subs))])
        return result

    step = engine.optimizer_step
    engine.optimizer_step = timed
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    overrides = [f"corpus.train={args['corpus']}", f"corpus.dev={args['corpus']}", f"training.output_dir={out}/run",
                 f"training.max_steps={args['steps']}", f"training.eval_frequency={args['steps']}", "training.max_eval_docs=2",
                 "training.checkpoints_to_keep=0", "training.log_every=10", "training.curves=false", "distributed.num_threads=1",
                 f"training.batcher.size={args['batch'] // world}", f"corpus.split_length={args['split_now']}"]
    run_worker(compose_config(overrides), WorkerEnv(rank=rank, world_size=world))
    Path(out, f"rank{rank}.json").write_text(json.dumps(times))


def train_mode(args: argparse.Namespace) -> dict[str, Any]:
    import torch.multiprocessing as mp

    rows = []
    for repeat in range(args.repeats):
        for split in (0, args.split):
            out = tempfile.mkdtemp(prefix="bench-balance-")
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            start = time.perf_counter()
            mp.spawn(_rank, args=(args.ranks, port, out, {**vars(args), "split_now": split}), nprocs=args.ranks, join=True)
            wall = time.perf_counter() - start
            per_rank = [json.loads(Path(out, f"rank{r}.json").read_text())[3:] for r in range(args.ranks)]  # warm-up dropped
            steps = list(zip(*per_rank))
            rows.append({
                "repeat": repeat, "split_length": split, "steps_timed": len(steps),
                "allreduce_wait_s": round(statistics.mean(t[1] for rank in per_rank for t in rank), 4),
                "compute_s": round(statistics.mean(t[0] for rank in per_rank for t in rank), 4),
                "slowest_compute_over_mean": round(statistics.mean(max(t[0] for t in s) / statistics.mean(t[0] for t in s) - 1 for s in steps), 4),
                "slowest_words_over_mean": round(excess([[int(t[2]) for t in s] for s in steps]), 4),
                "words_per_s": round(sum(t[2] for rank in per_rank for t in rank) / sum(max(t[0] + t[1] for t in s) for s in steps)),
                "wall_s": round(wall, 1),
            })
    return {"mode": "train", "ranks": args.ranks, "global_batch_words": args.batch, "corpus": args.corpus, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["words", "train"], default="words")
    parser.add_argument("--corpus", default=str(ROOT / "distnlp" / "demo_data" / "train"))
    parser.add_argument("--batch", type=int, default=2000, help="global words per step (each rank: batch / ranks)")
    parser.add_argument("--split", type=int, default=200, help="corpus.split_length of the cut-docs side")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ranks", type=int, default=2, help="train mode: gloo ranks")
    parser.add_argument("--ranks-list", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8], help="words mode")
    parser.add_argument("--repeats", type=int, default=1, help="train mode: alternate whole/cut this many times")
    args = parser.parse_args()
    result = words_mode(args) if args.mode == "words" else train_mode(args)
    print(json.dumps({**result, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
