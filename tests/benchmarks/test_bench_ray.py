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
         "--batch", "400", "--corpus", str(ROOT / "distnlp" / "demo_data" / "train")],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.rindex("\n{\n") + 1 :])  # the JSON report comes last
    assert result["single_process"]["words_per_second"] > 0 and result["ray_one_worker"]["words_per_second"] > 0
    assert set(result["single_process"]["step_time_s"]) == {"data", "compute", "reduce", "update"}
