"""`distnlp train -m`: one run per combination in DIR/<job> (Hydra's job order), a summary sorted
by best score in sweep.json and sweep.csv, and every job's config checked before any trains."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from distnlp.cli.main import main
from distnlp.training.metrics_log import read_metrics

FAST = ["encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3", "training.max_steps=3", "training.eval_frequency=3",
        "training.checkpoints_to_keep=0"]


def test_two_by_one_sweep_runs_each_job_in_its_own_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    rc = main(["train", "-m", "training.optimizer.learn_rate=0.0005,0.002", "components.ner.grad_factor=0.5", *FAST, f"training.output_dir={out}"])
    assert rc == 0
    for job, rate in ((0, 0.0005), (1, 0.002)):  # Hydra's order: the values as given
        config = yaml.safe_load((out / str(job) / "config.yaml").read_text())
        assert config["training"]["optimizer"]["learn_rate"] == rate and config["components"]["ner"]["grad_factor"] == 0.5
        assert config["training"]["output_dir"] == str(out / str(job))
        assert [e["step"] for e in read_metrics(out / str(job)).evals] == [3]
    entries = json.loads((out / "sweep.json").read_text())
    assert len(entries) == 2 and entries[0]["best_score"] >= entries[1]["best_score"]
    for entry in entries:
        best = read_metrics(entry["output_dir"]).best
        assert best is not None and entry["best_score"] == best["score"] and entry["scores"] == best["scores"]
        rate = "0.0005" if entry["output_dir"].endswith("0") else "0.002"
        assert entry["swept"] == {"training.optimizer.learn_rate": rate}
        assert f"training.optimizer.learn_rate={rate}" in entry["overrides"] and "components.ner.grad_factor=0.5" in entry["overrides"]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["output_dir"] for r in rows] == [e["output_dir"] for e in entries]
    assert float(rows[0]["best_score"]) == entries[0]["best_score"]
    summary = capsys.readouterr().out.split("sweep summary (sorted by best score):")[1]
    assert summary.index(entries[0]["output_dir"]) < summary.index(entries[1]["output_dir"])
    assert (out / "sweep_curves.png").stat().st_size > 10_000


def test_sweep_checks_every_job_before_training_any(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["train", "-m", "training.optimizer.learn_rat=0.001,0.002", *FAST, f"training.output_dir={out}"]) == 1
    assert "training.optimizer.learn_rat: unknown key" in capsys.readouterr().err and not out.exists()
    (out / "1").mkdir(parents=True)
    (out / "1" / "metrics.jsonl").write_text("")  # an earlier run in the second job's directory
    assert main(["train", "-m", "training.optimizer.learn_rate=0.001,0.002", *FAST, f"training.output_dir={out}"]) == 1
    assert "sweep/1 already holds an earlier run" in capsys.readouterr().err
    assert not (out / "0").exists()  # refused before the first job trained


def test_ray_jobs_are_separate_ray_runs(tmp_path: Path) -> None:
    """Under distributed=ray each job gets its own Ray run name, so jobs sharing a
    distributed.storage_path do not find each other's run (composed only; no Ray starts)."""
    from distnlp.cli.sweep import sweep_jobs

    out = tmp_path / "sweep"
    sweep_dir, jobs = sweep_jobs(["distributed=ray", f"distributed.storage_path={tmp_path / 'ray'}", "training.optimizer.learn_rate=0.001,0.002",
                                  "components.ner.grad_factor=0.5,1.0", f"training.output_dir={out}"])
    assert sweep_dir == str(out) and [j.output_dir for j in jobs] == [str(out / str(n)) for n in range(4)]
    assert [j.swept for j in jobs][:2] == [{"training.optimizer.learn_rate": "0.001", "components.ner.grad_factor": "0.5"},
                                           {"training.optimizer.learn_rate": "0.001", "components.ner.grad_factor": "1.0"}]
    assert len({j.config["distributed"]["run_name"] for j in jobs}) == 4


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    from distnlp.cli.compose import DEMO_DATA

    empty = tmp_path / "empty-dev"
    empty.mkdir()
    out = tmp_path / "sweep"
    assert main(["train", "-m", f"corpus.dev={empty},{DEMO_DATA / 'dev'}", *FAST, f"training.output_dir={out}"]) == 1
    entries = json.loads((out / "sweep.json").read_text())
    assert [e["job"] for e in entries] == [1, 0]  # the failed run last
    assert entries[0]["error"] is None and entries[0]["best_score"] is not None
    assert entries[1]["best_score"] is None and str(empty) in entries[1]["error"]
