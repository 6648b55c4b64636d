"""Curves: every evaluation redraws training_curves.png beside metrics.jsonl, from that file
alone; metrics.jsonl is read back tolerantly where a run may have left it (a resumed run's
repeated steps, a half-written last line) and strictly elsewhere (a damaged line is named)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.errors import CorpusError
from distnlp.training.curves import CURVES_FILE, draw_curves
from distnlp.training.loop import run_worker
from distnlp.training.metrics_log import read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_training_writes_curves_at_each_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    config = compose_config([f"training.output_dir={out}", "encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3",
                             "training.max_steps=4", "training.eval_frequency=2", "training.log_every=1", f"corpus.dev={DEMO_DATA / 'dev'}"])
    import distnlp.training.curves as curves

    drawn: list[int] = []
    real = curves.draw_curves
    monkeypatch.setattr(curves, "draw_curves", lambda runs, target: drawn.append(len(next(iter(runs.values())).evals)) or real(runs, target))
    run_worker(config)
    assert drawn == [1, 2]  # redrawn at each evaluation, each time with the evaluations so far
    png = out / CURVES_FILE
    width, height = _png_size(png)
    assert width > 400 and height > 200 and png.stat().st_size > 10_000  # a figure with drawn panels, not an empty canvas


def test_curves_off_draws_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    config = compose_config([f"training.output_dir={out}", "encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3",
                             "training.max_steps=2", "training.eval_frequency=2", "training.curves=false", f"corpus.dev={DEMO_DATA / 'dev'}"])
    import distnlp.training.curves as curves

    monkeypatch.setattr(curves, "draw_curves", lambda runs, target: pytest.fail("training.curves=false still drew"))
    run_worker(config)
    assert (out / "metrics.jsonl").exists() and not (out / CURVES_FILE).exists()


def test_curves_are_drawn_from_metrics_alone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"event": "step", "step": s, "losses": {"ner": 10.0 / s}, "lr": 1e-3, "grad_norm": 1.0, "words": 100} for s in (1, 2, 3, 4)]
    rows += [{"event": "eval", "step": s, "losses": {"ner": 5.0}, "scores": {"ents_f": 0.1 * s}, "score": 0.1 * s, "words_per_second": 900.0}
             for s in (2, 4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = draw_curves({"run": read_metrics(run)}, run / CURVES_FILE)
    empty = draw_curves({"run": read_metrics(_empty_run(tmp_path))}, tmp_path / "empty.png")
    # The same canvas size with lines drawn holds more than one saying "not logged yet".
    assert _png_size(target) == _png_size(empty)
    assert target.stat().st_size > empty.stat().st_size * 1.2


def _empty_run(tmp_path: Path) -> Path:
    run = tmp_path / "empty"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    return run


def test_metrics_keep_the_latest_record_of_a_repeated_step_and_skip_a_torn_last_line(tmp_path: Path) -> None:
    lines = [
        {"event": "eval", "step": 2, "score": 0.1, "scores": {}},
        {"event": "eval", "step": 4, "score": 0.2, "scores": {}},
        {"event": "eval", "step": 4, "score": 0.3, "scores": {}},  # resumed at step 2: step 4 again
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"event": "ev')
    metrics = read_metrics(tmp_path)
    assert [(e["step"], e["score"]) for e in metrics.evals] == [(2, 0.1), (4, 0.3)]
    assert metrics.best is not None and metrics.best["step"] == 4


def test_a_damaged_metrics_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"event": "eval", "step": 2, "score": 0.1}\nnot json\n{"event": "step", "step": 3}\n')
    with pytest.raises(CorpusError, match=r"metrics\.jsonl:2: not a JSON line"):
        read_metrics(tmp_path)
    with pytest.raises(Exception, match="no metrics.jsonl here"):
        read_metrics(tmp_path / "missing")
