"""bench_annotate.py runs end to end at a tiny size, without Ray and spaCy (speed is never asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().with_name("bench_annotate.py")


def test_annotate_benchmark_runs_tiny(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--words", "400", "--rows-per-shard", "10", "--skip-ray", "--skip-spacy",
         "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    pipe, single = report["distnlp_pipe"]["runs"][0], report["annotate_single"]["runs"][0]
    assert pipe["words"] == single["words"] >= 400
    assert single["shards"] == -(-single["docs"] // 10)
    assert report["annotate_single"]["median_wps_per_busy_process"] > 0
