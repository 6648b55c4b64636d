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


def test_raw_text_benchmark_runs_tiny(tmp_path):
    """bench_raw_text.py: an untrained distnlp pipeline against a blank spaCy one with a
    sentencizer, on 20 sentences of the demo dev file, plus a 500-word document."""
    import pytest

    spacy = pytest.importorskip("spacy")
    from distnlp.cli.compose import DEMO_DATA, compose_config
    from distnlp.pipeline.pipeline import Pipeline
    from distnlp.training.labels import pipeline_labels

    config = compose_config(["nlp.pipeline=[senter,tagger,parser]", "encoder.width=16"])
    Pipeline(config, pipeline_labels(config, str(DEMO_DATA / "train"))).to_disk(tmp_path / "distnlp-model")
    blank = spacy.blank("en")
    blank.add_pipe("sentencizer")
    blank.to_disk(tmp_path / "spacy-model")
    gold = tmp_path / "gold.conllu"
    blocks = (DEMO_DATA / "demo-dev.conllu").read_text(encoding="utf8").split("\n\n")[:20]
    gold.write_text("\n\n".join(blocks).strip() + "\n\n", encoding="utf8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_raw_text.py"), "--model", str(tmp_path / "distnlp-model"), "--spacy-model", str(tmp_path / "spacy-model"),
         "--gold", str(gold), "--seconds", "0.2", "--rounds", "1", "--long-doc", "500", "--out", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    side = report["rounds"][0]["distnlp"]
    assert side["words_per_s"] > 0 and 0 <= side["tree_search_share"] <= side["parser_decode_share"] < 1
    assert report["rounds"][0]["spacy"]["words_per_s"] > 0 and report["ratio_words_per_s"] > 0
    assert report["long_doc"]["distnlp"]["words"] == 500 and report["long_doc"]["spacy"]["peak_rss_mb"] > 0


def test_startup_benchmark_runs_tiny(tmp_path):
    """bench_startup.py on the demo twice: stored and scanned edit-tree labels agree, and real
    training start-up reaches its first optimizer step (first_step, one run)."""
    proc = subprocess.run([sys.executable, str(BENCH / "bench_startup.py"), "--words", "0.4M", "--modes", "meta,scan_lemma,first_step",
                           "--repeats", "1", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    assert [r["copies"] for r in rows] == [2]  # the demo twice: counts in meta.json doubled
    assert all(r["meta"]["lemma_labels"] == r["scan_lemma"]["lemma_labels"] for r in rows)
    first = rows[0]["first_step"]
    assert first["repeats"] == 1 and first["maxrss_mib"] > 0
    # the phases partition launch -> end of the first step
    assert abs(sum(first["phases"].values()) - first["seconds"]) < 0.05 * first["seconds"]


def test_scale_benchmark_runs_tiny(tmp_path):
    """bench_scale.py: 8 replicas of a 200K-word corpus, re-split to 6, one epoch."""
    proc = subprocess.run([sys.executable, str(BENCH / "bench_scale.py"), "--words", "200K", "--ranks", "8", "--resize", "6", "--steps", "20",
                           "--state-at", "1,20", "--steps-after", "10", "--sample", "3", "--epoch-words", "200K", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["runs"]) == {"fresh 8", "resized 8->6", "fresh 6 (same batch sizes)"}
    for run in result["runs"].values():
        assert run["batches_per_s_per_rank"] > 0 and run["words_per_s_per_rank"] > 0 and run["peak_mb"] > 0 and not run["aborted"]
    (resize,) = result["resizes"]
    assert resize["load_resplit_same_as_resplit"] and resize["resplit_fn_cold_s"] > 0 and resize["loaded_states"]["plan_pieces"] > 0
    assert result["states"]["8 ranks, step 20"]["skip_entries"] > 0
    epoch = result["epoch"]
    assert epoch["finished"] and 0 <= epoch["idle_fraction"] < 0.5


def test_prefetch_benchmark_runs_tiny(tmp_path):
    """bench_prefetch.py: inline and prefetched runs of the default pipeline, 7 steps each."""
    from distnlp.cli.compose import DEMO_DATA

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / "bench_prefetch.py"), "--corpus", str(DEMO_DATA / "train"), "--steps", "7",
                           "--repeats", "1", "--batch", "500"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    result = json.loads(out[out.index('{\n  "preset"'):])
    assert result["inline"][0]["words_per_second"] > 0 and result["prefetch"][0]["words_per_second"] > 0
    assert result["prefetch"][0]["data_wait_s"] < result["inline"][0]["data_wait_s"]  # the batch was ready


def test_reducer_benchmark_runs_tiny(tmp_path):
    """bench_reducer.py: 2 gloo ranks, 4 steps; the reducer copies no gradient bytes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / "bench_reducer.py"), "--ranks", "2", "--steps", "4", "--batch", "600"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    result = json.loads(out[out.index('{\n  "ranks"'):])
    assert result["reducer_bytes_copied_per_step"] == [0.0, 0.0]
    assert result["step_time_s"]["compute"] > 0


def test_balance_benchmark_runs_tiny(tmp_path):
    """bench_balance.py: the per-step words of 2 ranks, whole and cut docs; then the real loop on
    2 gloo ranks, 6 steps each way."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    words = subprocess.run([sys.executable, str(BENCH / "bench_balance.py"), "--mode", "words", "--ranks-list", "2", "--steps", "40",
                            "--split", "100"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert words.returncode == 0, words.stderr[-3000:]
    whole, cut = json.loads(words.stdout)["rows"]
    assert (whole["split_length"], cut["split_length"]) == (0, 100)
    assert cut["slowest_over_mean"] < whole["slowest_over_mean"]
    train = subprocess.run([sys.executable, str(BENCH / "bench_balance.py"), "--mode", "train", "--ranks", "2", "--steps", "6",
                            "--split", "100"], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert train.returncode == 0, train.stderr[-3000:]
    out = train.stdout
    rows = json.loads(out[out.index('{\n  "mode"'):])["rows"]
    assert [r["split_length"] for r in rows] == [0, 100] and all(r["steps_timed"] == 3 and r["words_per_s"] > 0 for r in rows)
