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


def test_multi_corpus_benchmark_runs_tiny(tmp_path):
    """bench_multi_corpus.py: the demo corpus and a 12-line intents CSV, 2 steps per run."""
    from distnlp.cli.compose import DEMO_DATA
    from distnlp.cli.main import main as distnlp_main

    csv = tmp_path / "intents.csv"
    csv.write_text("text,category\n" + "where is my card,card\nrefund me please,refund\nmy card has not come,card\n" * 4)
    assert distnlp_main(["convert", str(csv), str(tmp_path / "intents")]) in (0, None)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_multi_corpus.py"), "--ewt-train", str(DEMO_DATA / "train"), "--ewt-dev", str(DEMO_DATA / "dev"),
         "--b77-train", str(tmp_path / "intents"), "--b77-dev", str(tmp_path / "intents"), "--max-steps", "2", "--eval-frequency", "2",
         "--infer-seconds", "0", "--infer-max-docs", "5", "--out", str(tmp_path / "runs"), "encoder.width=16", "training.max_eval_docs=3"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "runs" / "results.json").read_text())
    runs = result["runs"]
    assert set(runs["shared"]["dev_scores"]) == {"ewt", "banking77"} and "cats_score" in runs["shared"]["dev_scores"]["banking77"]
    assert "tag_acc" in runs["ewt"]["dev_scores"]["ewt"] and set(runs["banking77"]["dev_scores"]) == {"banking77"}
    for run in runs.values():
        assert run["model_bytes"] > 0 and run["train_words_per_s"] > 0 and run["train_words"] > 0
        assert all(v > 0 for v in run["infer_words_per_s"].values())
    assert result["shared_vs_separate_bytes"] > 0
