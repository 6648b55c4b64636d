"""training.loggers: TensorBoard event files and an MLflow store (SQLite under the run's output
directory) hold the run's parameters and metrics, read back with their own readers; a tracker
that cannot start is one line and the run trains on; an unknown name is a one-line config error."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.config.settings import training_run
from distnlp.errors import ConfigError
from distnlp.training.loop import run_worker

STEPS = 4


def _overrides(out: Path, loggers: str, *extra: str) -> list[str]:
    return [f"corpus.train={DEMO_DATA / 'dev'}", f"corpus.dev={DEMO_DATA / 'dev'}", "encoder.width=16", "nlp.pipeline=[tagger,ner]",
            "distributed.num_threads=1", f"training.max_steps={STEPS}", "training.eval_frequency=2", "training.log_every=1",
            "training.max_eval_docs=4", "training.curves=false", f"training.loggers={loggers}", f"training.output_dir={out}", *extra]


def _train(out: Path, loggers: str, *extra: str) -> None:
    run_worker(compose_config(_overrides(out, loggers, *extra)))


def _tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the run's event files, read as TFRecords of tensorboard Event protos."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_tensorboard_and_mlflow_hold_the_run(tmp_path: Path) -> None:
    """Trained twice into one directory, the second time with overwrite=true: the default stores
    are distnlp's and are replaced with the run, so the trackers hold the second run alone."""
    out = tmp_path / "run"
    first = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "train", *_overrides(out, "[tensorboard,mlflow]")],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    _train(out, "[tensorboard,mlflow]", "training.overwrite=true")
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]

    scalars = _tensorboard_scalars(out / "tensorboard")
    assert [s for s, _ in scalars["train/loss/tagger"]] == list(range(1, STEPS + 1))
    assert [s for s, _ in scalars["eval/score"]] == [r["step"] for r in evals] == [2, 4]
    assert scalars["eval/score"][-1][1] == pytest.approx(evals[-1]["score"], rel=1e-6)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    run, = client.search_runs([client.get_experiment_by_name("distnlp").experiment_id])
    assert run.data.params["training.max_steps"] == str(STEPS) and run.data.params["nlp.pipeline"] == "['tagger', 'ner']"
    history = client.get_metric_history(run.info.run_id, "train.loss.tagger")
    assert [m.step for m in history] == list(range(1, STEPS + 1))
    assert [m.value for m in client.get_metric_history(run.info.run_id, "eval.score")] == pytest.approx([r["score"] for r in evals])
    assert run.info.status == "FINISHED"
    assert "model-best/meta.json" in {a.path for a in client.list_artifacts(run.info.run_id, "model-best")}


def test_a_resumed_run_continues_its_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    _train(out, "[mlflow]", "training.max_steps=2")
    _train(out, "[mlflow]", "training.resume=true")
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("distnlp").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["distnlp.run_id"] == json.loads((out / "run.json").read_text())["run_id"]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train.loss.tagger")] == list(range(1, STEPS + 1))


def _wandb_records(run_dir: Path) -> list[object]:
    """The protobuf Records of an offline W&B run's .wandb file (a LevelDB-style log: a 7-byte
    header, then 32 KiB blocks of chunks with a crc, a length and a FULL/FIRST/MIDDLE/LAST type)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, = [p.read_bytes() for p in run_dir.glob("*.wandb")]
    assert data[:4] == b":W&B"
    block, at, pending, records = 32768, 7, b"", []
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a header is padding
            at += block - at % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[at : at + 7])
        if length == 0 and kind == 0:
            break
        pending += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # FULL or LAST: a record is complete
            records.append(Record.FromString(pending))
            pending = b""
    return records


def test_wandb_offline_holds_the_run_and_a_resumed_run_continues_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Two processes, as a user's run and its resumption are: in one process, W&B's client (shared
    # by every wandb.init there) now and then lost the second run's history in the full suite.
    for extra in ("training.max_steps=2", "training.resume=true"):
        proc = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "train", *_overrides(out, "[wandb]", extra)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    runs = sorted((out / "wandb").glob("offline-run-*"))
    # one W&B run (its id), written twice: `wandb sync` joins them
    assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs), sorted(p.name for p in (out / "wandb").iterdir())
    history: dict[str, list[tuple[int, float]]] = {}
    config = {}
    for run in runs:
        for record in _wandb_records(run):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                for key, value in items.items():
                    if not key.startswith("_"):
                        history.setdefault(key, []).append((items["_step"], value))
            elif kind == "run":
                assert record.run.run_id == run_id and record.run.display_name == "run"
                config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert [s for s, _ in history.get("train/loss/tagger", [])] == list(range(1, STEPS + 1)), history
    assert history.get("eval/score") == [(r["step"], pytest.approx(r["score"])) for r in evals], history
    assert config["training"]["max_steps"] == STEPS and config["nlp"]["pipeline"] == ["tagger", "ner"]  # the resumed run's config


def test_a_tracker_that_cannot_start_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _train(out, "[{_use_: distnlp.mlflow.v1, tracking_uri: 'bogus-scheme://nowhere'}]")
    printed = capsys.readouterr().out
    warning = [line for line in printed.splitlines() if line.startswith("training.loggers:")]
    assert len(warning) == 1 and "distnlp.mlflow.v1 did not start" in warning[0] and "training goes on without it" in warning[0]
    assert (out / "model-last").is_dir()  # trained to the end


def test_an_unknown_logger_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^training\.loggers\[1\]: unknown loggers name 'tensorbord'.*tensorboard"):
        training_run(compose_config(["training.loggers=[mlflow,tensorbord]"]))
