"""Ray benchmarks (issue 5), run on purpose, not in CI.

  scaling:  2 Ray workers vs 1 on the same GLOBAL batch (each of 2 workers gets half the words),
            words/s ratio and where a step's time goes (data, compute, all-reduce wait, update).
  overhead: Ray with 1 worker vs plain single-process training on the same config.
            --pin: the driver and Ray's daemons on one core, the training process (the single
            process, or Ray's worker) alone on another, on both sides, so that contention
            for cores is not counted as Ray's overhead. --repeats N alternates the two N times.

    python tests/benchmarks/bench_ray.py --mode scaling --steps 300            # CPU, CNN pipeline
    python tests/benchmarks/bench_ray.py --mode overhead --preset bert-base --device cuda --steps 300

Words/s come from the training loop's own eval records (summed over ranks, training time only);
the first interval (warm-up) is dropped. The step split (data, compute, reduce, update) is the mean
over the logged steps after step 5: every step by default, only the logging steps with
`--override training.log_every=N`. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "cnn": [],
    # BERT-base shape (12 x 768, random init from a config: no download), tiny-bert's tokenizer.
    "bert-base": [
        "encoder=tiny_transformer",
        "+encoder.model.transformer_config={hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512}",
        "encoder.model.max_batch_items=16384",
    ],
}


def _config(out: Path, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    from distnlp.cli.compose import compose_config
    from distnlp.config import validate_config

    overrides = [
        f"corpus.train={args.corpus}", f"corpus.dev={args.dev or args.corpus}", f"training.output_dir={out}",
        f"training.max_steps={args.steps}", f"training.eval_frequency={args.eval_every}", "training.max_eval_docs=2",
        # One checkpoint kept on both sides: Ray always checkpoints at an evaluation (its fault
        # tolerance), so the single process does too, and the ratio is Ray's cost alone.
        "training.checkpoints_to_keep=1", "training.dropout=0.1", "training.log_every=1", *PRESETS[args.preset], *extra,
        *args.override,
    ]
    config = compose_config(overrides)
    validate_config(config)
    return config


def _rates(out: Path) -> dict[str, Any]:
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["words_per_second"] for r in records if r["event"] == "eval"][1:]
    steps = [r for r in records if r["event"] == "step" and "time" in r and r["step"] > 5]  # logged steps after warm-up
    mean = lambda key: statistics.mean(s["time"][key] for s in steps) if steps else 0.0  # noqa: E731
    return {
        "words_per_second": statistics.mean(evals) if evals else 0.0,
        "step_time_s": {k: round(mean(k), 5) for k in ("data", "compute", "reduce", "update")},
    }


def _bootstrap_ci(ratios: list[float], resamples: int = 10_000) -> list[float] | None:
    """95% interval of the mean pair ratio, by resampling the pairs (seeded: the same pairs give
    the same interval). Each pair runs at its own time, so the machine's drift between pairs is
    what the interval is about; it is None for fewer than 3 pairs."""
    if len(ratios) < 3:
        return None
    draw = random.Random(0)
    means = sorted(statistics.mean(draw.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return [round(means[int(0.025 * resamples)], 4), round(means[int(0.975 * resamples) - 1], 4)]


DAEMON_CORES, TRAIN_CORES = {0}, {1}  # --pin


def _pin_threads(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` (sched_setaffinity is per thread on Linux)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
        except (ProcessLookupError, PermissionError):
            pass


class _PinRayWorkers(threading.Thread):
    """Moves Ray Train's worker processes (and their new threads) onto TRAIN_CORES while a run lasts."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.pinned: set[int] = set()

    def run(self) -> None:
        while not self.done.wait(0.2):
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    try:
                        if b"RayTrainWorker" in (proc / "cmdline").read_bytes():
                            _pin_threads(int(proc.name), TRAIN_CORES)
                            self.pinned.add(int(proc.name))
                    except OSError:
                        pass


def run_single(args: argparse.Namespace, batch: int) -> dict[str, Any]:
    from distnlp.training.env import WorkerEnv
    from distnlp.training.loop import run_worker

    out = Path(tempfile.mkdtemp(prefix="bench-single-"))
    config = _config(out, args, [f"training.batcher.size={batch}", f"distributed.num_threads={args.threads}"])
    device = "cuda" if args.device == "cuda" else "cpu"
    if args.pin:
        _pin_threads(os.getpid(), TRAIN_CORES)
    start = time.perf_counter()
    try:
        run_worker(config, WorkerEnv(device=device))
    finally:
        if args.pin:
            _pin_threads(os.getpid(), DAEMON_CORES)
    return {"wall_s": time.perf_counter() - start, **_rates(out)}


def run_ray(args: argparse.Namespace, workers: int, batch: int) -> dict[str, Any]:
    from distnlp.ray_backend.driver import train_on_ray

    out = Path(tempfile.mkdtemp(prefix=f"bench-ray{workers}-"))
    config = _config(out, args, [
        "distributed=ray", f"distributed.num_workers={workers}", f"distributed.use_gpu={str(args.device == 'cuda').lower()}",
        f"training.batcher.size={batch}", f"distributed.num_threads={args.threads}",
    ])
    pinner = _PinRayWorkers() if args.pin else None
    if pinner is not None:
        pinner.start()
    start = time.perf_counter()
    try:
        train_on_ray(config)
    finally:
        if pinner is not None:
            pinner.done.set()
    extra = {"pinned_worker_pids": len(pinner.pinned)} if pinner is not None else {}
    return {"wall_s": time.perf_counter() - start, **_rates(out), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["scaling", "overhead"], required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cnn")
    parser.add_argument("--corpus", default=str(ROOT / "corpus" / "ewt-train") if (ROOT / "corpus" / "ewt-train").exists() else str(ROOT / "distnlp" / "demo_data" / "train"))
    parser.add_argument("--dev", default=None)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=2000, help="global words per step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--pin", action="store_true", help="daemons and driver on core 0, the training process on core 1 (Linux)")
    parser.add_argument("--repeats", type=int, default=1, help="overhead: alternate single and Ray this many times")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both sides, after the benchmark's own (repeatable), e.g. training.log_every=50")
    args = parser.parse_args()
    if args.pin:
        _pin_threads(os.getpid(), DAEMON_CORES)  # before ray.init: Ray's daemons inherit it
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    import ray
    import torch

    # address="local": a private Ray, never a cluster that Ray's temp dir or RAY_ADDRESS names
    ray.init(address="local", num_cpus=max(4, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    result: dict[str, Any] = {
        "mode": args.mode, "preset": args.preset, "device": args.device, "steps": args.steps, "global_batch_words": args.batch,
        "threads_per_process": args.threads, "corpus": args.corpus, "torch": torch.__version__, "ray": ray.__version__,
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    if args.mode == "scaling":
        one = run_ray(args, 1, args.batch)
        two = run_ray(args, 2, args.batch // 2)
        result.update(one_worker=one, two_workers=two, ratio=two["words_per_second"] / max(one["words_per_second"], 1e-9))
    else:
        runs = [(run_single(args, args.batch), run_ray(args, 1, args.batch)) for _ in range(max(1, args.repeats))]
        single, ray1 = runs[-1]
        ratios = [r["words_per_second"] / max(s["words_per_second"], 1e-9) for s, r in runs]
        result.update(single_process=single, ray_one_worker=ray1, ray_over_single=ratios[-1], pinned=args.pin,
                      ratios=[round(x, 4) for x in ratios], mean_ratio=round(statistics.mean(ratios), 4),
                      median_ratio=round(statistics.median(ratios), 4), mean_ratio_ci95=_bootstrap_ci(ratios),
                      single_wps=[round(s["words_per_second"]) for s, _ in runs], ray_wps=[round(r["words_per_second"]) for _, r in runs])
    result["loadavg_end"] = os.getloadavg()
    ray.shutdown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
