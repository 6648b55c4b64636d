"""The parser benchmark runs end to end at a tiny size (speed is never asserted here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def test_parser_benchmark_runs_tiny(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_parser.py"), "--seconds", "0.2", "--rounds", "1", "--max-docs", "3",
         "nlp.pipeline=[tagger,parser]", "encoder.width=16"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["pipeline"] == ["tagger", "parser"] and result["docs"] == 3
    assert result["with_parser_words_per_s"][0] > 0 and result["without_parser_words_per_s"][0] > 0
