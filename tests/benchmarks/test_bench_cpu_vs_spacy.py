"""bench_cpu_vs_spacy.py still runs: its distnlp side only (--skip-spacy), 2 s on the demo corpus."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "benchmarks" / "bench_cpu_vs_spacy.py"
DEMO = REPO / "distnlp" / "demo_data" / "train"


def test_cpu_vs_spacy_runs_without_spacy(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(SCRIPT), "--skip-spacy", "--seconds", "2", "--infer-seconds", "0",
           "--rounds", "1", "--corpus", str(DEMO), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    side = report["rounds"][0]["distnlp"]
    assert "spacy" not in report["rounds"][0]
    assert side["train"]["steps"] > 0 and side["train"]["words_per_second"] > 0
    assert side["inference"]["passes"] >= 1 and side["inference"]["words"] == report["data"]["words"]
    assert side["labels"].keys() == {"tagger", "morphologizer", "ner"}
    assert report["settings"]["threads"] == 1 and "ratio_distnlp_over_spacy" not in report["summary"]
    assert "distnlp" in proc.stdout
