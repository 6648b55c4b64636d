"""`distnlp tune` with ASHA against the same grid run to the end (issue 26), run on purpose, not
in CI: learn rate x encoder width on EWT, the two sweeps one after the other on one machine.

    python tests/benchmarks/bench_tune.py --steps 200 --eval-every 40 --concurrent 2

Per sweep: wall time, trials completed and stopped early, steps trained in all, and the best
trial (score and overrides). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def sweep(args: argparse.Namespace, scheduler: str) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-tune-{scheduler}-")) / "sweep"
    command = [sys.executable, "-m", "distnlp.cli.main", "tune", f"training.optimizer.learn_rate={args.learn_rates}",
               f"encoder.width={args.widths}", "tune.search=grid", f"tune.scheduler={scheduler}", f"tune.max_concurrent={args.concurrent}",
               f"corpus.train={args.train}", f"corpus.dev={args.dev}", f"training.max_steps={args.steps}",
               f"training.eval_frequency={args.eval_every}", f"training.max_eval_docs={args.eval_docs}", "training.checkpoints_to_keep=1",
               "training.curves=false", "distributed.num_threads=1", f"training.output_dir={out}"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{scheduler} sweep failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "sweep.json").read_text())
    trials = summary["trials"]
    return {
        "scheduler": scheduler,
        "wall_s": round(wall, 1),
        "completed": summary["completed"],
        "stopped_early": summary["stopped_early"],
        "steps_trained": sum(t["steps"] or 0 for t in trials),
        "best_score": summary["best"]["score"],
        "best_overrides": summary["best"]["overrides"],
        "trials": [{"swept": t["swept"], "status": t["status"], "steps": t["steps"], "best_score": t["best_score"]} for t in trials],
        "sweep_dir": str(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default=str(ROOT / "corpus" / "ewt-train"))
    parser.add_argument("--dev", default=str(ROOT / "corpus" / "ewt-dev"))
    parser.add_argument("--learn-rates", default="0.0005,0.001,0.002,0.004")
    parser.add_argument("--widths", default="64,96")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--eval-docs", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    results = [sweep(args, "asha"), sweep(args, "fifo")]
    asha, grid = results
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "settings": vars(args),
        "asha": asha,
        "grid_to_the_end": grid,
        "wall_ratio_asha_over_grid": round(asha["wall_s"] / grid["wall_s"], 3),
        "best_score_delta": round(asha["best_score"] - grid["best_score"], 5),
    }, indent=2))


if __name__ == "__main__":
    main()
