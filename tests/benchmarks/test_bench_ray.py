"""The Ray benchmark script runs end to end at a tiny size (the numbers come from real runs)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.ray
def test_ray_overhead_benchmark_runs_tiny_on_cpu() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "bench_ray.py"), "--mode", "overhead", "--steps", "9", "--eval-every", "3",
         "--batch", "400", "--override", "training.log_every=3", "--corpus", str(ROOT / "distnlp" / "demo_data" / "train")],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.rindex("\n{\n") + 1 :])  # the JSON report comes last
    assert result["single_process"]["words_per_second"] > 0 and result["ray_one_worker"]["words_per_second"] > 0
    for side in ("single_process", "ray_one_worker"):
        times = result[side]["step_time_s"]
        assert set(times) == {"data", "compute", "reduce", "update"}
        assert times["compute"] > 0, times  # the logged steps after warm-up (every third step here)


def test_the_pair_interval_brackets_the_mean_and_widens_with_the_spread() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    from bench_ray import _bootstrap_ci

    assert _bootstrap_ci([0.98, 1.02]) is None  # too few pairs to resample
    tight = _bootstrap_ci([0.99, 1.0, 1.01, 1.0, 0.99, 1.01])
    wide = _bootstrap_ci([0.90, 1.10, 0.95, 1.05, 0.92, 1.08])
    assert tight[0] < 1.0 < tight[1] and wide[0] < tight[0] and wide[1] > tight[1]
    assert _bootstrap_ci([0.90, 1.10, 0.95, 1.05, 0.92, 1.08]) == wide  # seeded
