"""Benchmark scripts run end to end at a tiny size (speed is never asserted here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def test_trf_benchmark_runs_tiny_on_cpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_trf_gpu.py"), "--tiny", "--device", "cpu", "--steps", "3"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for run in ("distnlp", "hf_same_batches", "hf_own_batches", "distnlp_frozen"):
        assert result[run]["wordpieces_per_s"] > 0 and result[run]["forwards"] >= 3
        assert 0 <= result[run]["mfu"] < 1
    # (a) identical batches: the plain loop ran exactly distnlp's sub-batches
    assert result["hf_same_batches"]["padding_fraction"] == result["distnlp"]["padding_fraction"]
    assert result["frozen_speedup"] > 0
