"""The shared-vs-independent embedding benchmark runs end to end at a tiny size (speed and
accuracy are never asserted here; the parameter count is: independent copies are bigger)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def test_shared_vs_independent_benchmark_runs_tiny(tmp_path: Path) -> None:
    from distnlp.cli.compose import DEMO_DATA

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_shared_vs_independent.py"), "--out", str(tmp_path / "runs"), "--max-steps", "4",
         "--eval-frequency", "2", "--seconds", "0.2", "--rounds", "1", "--train-corpus", str(DEMO_DATA / "dev"),
         "--dev-corpus", str(DEMO_DATA / "dev"), "encoder.width=16", "training.max_eval_docs=8"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    shared, indep = result["shared"], result["independent"]
    assert indep["parameters"] > shared["parameters"] and indep["model_bytes"] > shared["model_bytes"]
    for r in (shared, indep):
        assert r["train_words_per_s"] > 0 and r["infer_words_per_s"] > 0 and "dep_las" in r["scores"]
