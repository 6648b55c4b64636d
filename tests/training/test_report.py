"""`distnlp report`: one table with each run's final and best score, curves of all runs in one
PNG, and a one-line error for a directory without metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distnlp.cli.main import main


def _run(root: Path, name: str, scores: list[float]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    rows = [{"event": "step", "step": 2 * i + 1, "losses": {"ner": 1.0 / (i + 1)}, "lr": 1e-3, "grad_norm": 2.0} for i in range(len(scores))]
    rows += [{"event": "eval", "step": 2 * (i + 1), "losses": {"ner": 3.0}, "scores": {"ents_f": s}, "score": s, "words_per_second": 500.0}
             for i, s in enumerate(scores)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_report_prints_final_and_best_and_draws_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(tmp_path, "a", [0.10, 0.40, 0.30])
    b = _run(tmp_path / "other", "b", [0.20, 0.25])
    png = tmp_path / "cmp.png"
    assert main(["report", str(a), str(b), "--output", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "STEPS", "FINAL", "BEST", "BEST@", "ENTS_F"]
    assert lines[2].split() == ["a", "6", "30.00", "40.00", "4", "40.00"]
    assert lines[3].split() == ["b", "4", "25.00", "25.00", "4", "25.00"]
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_report_on_a_directory_without_metrics_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nothing"), "--output", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no metrics.jsonl here" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_a_sweep_directory_stands_for_its_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    for job, scores in ((0, [0.1, 0.2]), (1, [0.3])):
        _run(sweep, str(job), scores)
    entries = [{"job": j, "output_dir": f"elsewhere/sweep/{j}"} for j in (1, 0)]  # sorted by score, paths as given then
    (sweep / "sweep.json").write_text(json.dumps(entries))
    assert main(["report", str(sweep), "--output", str(tmp_path / "s.png")]) == 0
    rows = [line.split()[:4] for line in capsys.readouterr().out.splitlines()[2:4]]
    assert rows == [["sweep/0", "4", "20.00", "20.00"], ["sweep/1", "2", "30.00", "30.00"]]
