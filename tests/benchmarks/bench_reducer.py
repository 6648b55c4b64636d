"""Gradient reducer (issue 25, item 4), run on purpose, not in CI: the real training loop on N
gloo ranks (CPU), counting the bytes the reducer copies per step (a TorchDispatchMode around its
launch and wait: copies into buckets, out of them, casts for the wire) and timing the step.

    python tests/benchmarks/bench_reducer.py --ranks 2 --steps 20
    python tests/benchmarks/bench_reducer.py --ranks 2 --steps 20 --reduce-dtype bfloat16

Run it from a checkout of another commit (git worktree) for a before/after: the methods it
wraps (`_launch_ready`, `sum_grads`) exist in both reducers. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _rank(rank: int, world: int, port: int, out: str, args: dict[str, Any]) -> None:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    import distnlp.distributed.grad_sync as grad_sync
    from distnlp.cli.compose import compose_config
    from distnlp.training.env import WorkerEnv
    from distnlp.training.loop import run_worker

    copies = {torch.ops.aten.copy_.default, torch.ops.aten.clone.default, torch.ops.aten._to_copy.default}
    counted = {"bytes": 0}

    class Copied(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, a: tuple = (), k: dict | None = None) -> Any:
            result = func(*a, **(k or {}))
            if func in copies and isinstance(result, torch.Tensor) and result.numel() > 1:
                counted["bytes"] += result.numel() * result.element_size()
            return result

    def counting(method: Any) -> Any:
        def wrapped(*a: Any, **k: Any) -> Any:
            with Copied():
                return method(*a, **k)
        return wrapped

    for name in ("_launch_ready", "sum_grads"):
        setattr(grad_sync.GradAllReducer, name, counting(getattr(grad_sync.GradAllReducer, name)))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    overrides = [f"corpus.train={args['corpus']}", f"corpus.dev={args['corpus']}", f"training.output_dir={out}/run",
                 f"training.max_steps={args['steps']}", f"training.eval_frequency={args['steps']}", "training.max_eval_docs=2",
                 "training.checkpoints_to_keep=0", "training.log_every=1", "training.curves=false", "distributed.num_threads=1",
                 f"training.batcher.size={args['batch'] // world}"]
    if args["reduce_dtype"]:
        overrides.append(f"distributed.reduce_dtype={args['reduce_dtype']}")
    n_params = {}
    start = time.perf_counter()
    run_worker(compose_config(overrides), WorkerEnv(rank=rank, world_size=world))
    n_params["wall_s"] = time.perf_counter() - start
    Path(out, f"rank{rank}.json").write_text(json.dumps({"bytes_per_step": counted["bytes"] / args["steps"], **n_params}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000, help="global words per step")
    parser.add_argument("--corpus", default=str(ROOT / "distnlp" / "demo_data" / "train"))
    parser.add_argument("--reduce-dtype", default="", help="distributed.reduce_dtype (default: the gradients' own type)")
    args = parser.parse_args()
    import torch.multiprocessing as mp

    out = tempfile.mkdtemp(prefix="bench-reducer-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    mp.spawn(_rank, args=(args.ranks, port, out, vars(args)), nprocs=args.ranks, join=True)
    ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(args.ranks)]
    steps = [json.loads(l) for l in Path(out, "run", "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["event"] == "step"][3:]
    print(json.dumps({
        "ranks": args.ranks, "steps": args.steps, "global_batch_words": args.batch, "reduce_dtype": args.reduce_dtype or None,
        "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
        "reducer_bytes_copied_per_step": [r["bytes_per_step"] for r in ranks],
        "step_time_s": {k: round(statistics.mean(s["time"][k] for s in steps), 5) for k in ("data", "compute", "reduce", "update")},
    }, indent=2))


if __name__ == "__main__":
    main()
