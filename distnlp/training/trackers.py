"""Experiment trackers (`training.loggers`): where spaCy and Ray users follow their runs.

Each tracker receives the records `metrics.jsonl` receives (one per logged step, one per
evaluation), on rank 0 only, so a run on N replicas is one run in the tracker. Console and
`metrics.jsonl` stay whatever is configured. A tracker is optional in both senses: its package is
imported only when it is configured (`pip install distnlp[mlflow]`), and one that fails to start
or to log is reported in one line and dropped; training never depends on it.

    training.loggers=[tensorboard,mlflow,wandb]
    training.loggers=[{_use_: distnlp.mlflow.v1, tracking_uri: http://mlflow:5000, experiment: ewt}]
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..registry import USE_KEY, loggers


class Tracker(Protocol):
    name: str

    def start(self, output_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        """Open the run: the resolved config as its parameters. `run_id`: distnlp's (run.json),
        the same when a run resumes, so a tracker can continue its own run instead of a new one."""

    def log(self, record: Mapping[str, Any]) -> None:
        """A metrics.jsonl record: {"event": "step" | "eval", "step": N, ...}."""

    def finish(self, model_dir: Path | None) -> None:
        """Close the run; `model_dir`: the best model, for trackers that keep artifacts."""


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a record, named as a tracker shows them (loss/tagger, score/tag_acc, lr...)."""
    out: dict[str, float] = {}
    for name, value in (record.get("losses") or {}).items():
        out[f"loss/{name}"] = float(value)
    if record.get("event") == "eval":
        for name, value in (record.get("scores") or {}).items():
            if isinstance(value, (int, float)):
                out[f"score/{name}"] = float(value)
        for key in ("score", "words_per_second"):
            if isinstance(record.get(key), (int, float)):
                out[key] = float(record[key])
    else:
        for key in ("lr", "grad_norm", "words"):
            if isinstance(record.get(key), (int, float)):
                out[key] = float(record[key])
    prefix = "eval/" if record.get("event") == "eval" else "train/"
    return {prefix + k: v for k, v in out.items()}


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved config as dotted keys -> text (trackers' parameters are flat strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, name + "."))
        else:
            out[name] = str(value)
    return out


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, log_dir: str | None = None) -> None:
        self.log_dir = log_dir
        self.writer: Any = None

    def start(self, output_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        from tensorboardX import SummaryWriter  # an optional package: imported only when configured

        # The pid in the file name: two writers started in the same second (a quick resume) would
        # otherwise open the same file and the second would truncate the first's events.
        self.writer = SummaryWriter(logdir=str(Path(self.log_dir) if self.log_dir else output_dir / "tensorboard"),
                                    filename_suffix=f".{os.getpid()}")
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(flat_params(config).items())))

    def log(self, record: Mapping[str, Any]) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, int(record["step"]))
        self.writer.flush()

    def finish(self, model_dir: Path | None) -> None:
        self.writer.close()


class MLflowTracker:
    """A local store under the run's output directory by default (SQLite, MLflow's recommended
    backend), or any tracking URI; params = the resolved config; model-best as an artifact. A
    resumed distnlp run continues its MLflow run (found by the tag `distnlp.run_id`)."""

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str = "distnlp", run_name: str | None = None,
                 log_model: bool = True) -> None:
        self.tracking_uri, self.experiment, self.run_name, self.log_model = tracking_uri, experiment, run_name, log_model
        self.client: Any = None
        self.run_id = ""

    def start(self, output_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        from mlflow.entities import Param  # an optional package: imported only when configured
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri or f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            artifacts = None if self.tracking_uri else (output_dir / "mlartifacts").resolve().as_uri()
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=artifacts)
        tag = "distnlp.run_id"
        earlier = self.client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{run_id}'", max_results=1) if run_id else []
        if earlier:  # this distnlp run resumed: its MLflow run goes on
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(experiment_id, run_name=self.run_name or output_dir.name, tags={tag: run_id} if run_id else None)
        self.run_id = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in sorted(flat_params(config).items())]  # MLflow's longest param value
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("/", "."), v, now, int(record["step"])) for k, v in scalars(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, model_dir: Path | None) -> None:
        if self.log_model and model_dir is not None and model_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(model_dir), artifact_path=model_dir.name)
        self.client.set_terminated(self.run_id)


class WandbTracker:
    """Weights & Biases, offline by default: the run is written under OUTPUT_DIR/wandb and sent
    later with `wandb sync` (mode: online sends it as it goes, given `wandb login` or
    WANDB_API_KEY). Config = the resolved config; the W&B run id is distnlp's run id, so a
    resumed run continues its W&B run; model-best as an artifact with log_model: true."""

    name = "wandb"

    def __init__(self, project: str = "distnlp", entity: str | None = None, mode: str = "offline", run_name: str | None = None,
                 log_model: bool = False, dir: str | None = None) -> None:
        self.project, self.entity, self.mode, self.run_name, self.log_model, self.dir = project, entity, mode, run_name, log_model, dir
        self.run: Any = None

    def start(self, output_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        import wandb  # an optional package: imported only when configured

        where = Path(self.dir) if self.dir else output_dir
        where.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, name=self.run_name or output_dir.name, dir=str(where),
                              id=run_id, resume="allow" if run_id else None, config=dict(config),
                              settings=wandb.Settings(silent=True, console="off", save_code=False, x_disable_stats=True))

    def log(self, record: Mapping[str, Any]) -> None:
        values = scalars(record)
        if values:
            self.run.log(values, step=int(record["step"]))

    def finish(self, model_dir: Path | None) -> None:
        if self.log_model and model_dir is not None and model_dir.is_dir():
            import wandb

            artifact = wandb.Artifact(f"{self.run.id}-{model_dir.name}", type="model")
            artifact.add_dir(str(model_dir))
            self.run.log_artifact(artifact)
        self.run.finish()


loggers.register("distnlp.tensorboard.v1", TensorBoardTracker)
loggers.register("distnlp.mlflow.v1", MLflowTracker)
loggers.register("distnlp.wandb.v1", WandbTracker)


def start_trackers(specs: Iterable[Mapping[str, Any]], output_dir: Path, config: Mapping[str, Any],
                   warn: Callable[[str], None], run_id: str | None = None) -> list[Tracker]:
    """Build and start each tracker; one that cannot start is reported in one line and left out."""
    started: list[Tracker] = []
    for spec in specs:
        name = str(spec[USE_KEY])
        try:
            tracker = loggers.get(name)(**{k: v for k, v in spec.items() if k != USE_KEY})
            tracker.start(output_dir, config, run_id)
        except Exception as exc:  # a tracker must never stop training
            warn(f"training.loggers: {name} did not start ({_one_line(exc)}){_hint(exc)}; training goes on without it")
            continue
        started.append(tracker)
    return started


class TrackerFanout:
    """The started trackers, each dropped with one line at its first failure."""

    def __init__(self, trackers: Sequence[Tracker], warn: Callable[[str], None]) -> None:
        self.trackers, self.warn = list(trackers), warn

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as exc:  # a tracker must never stop training
                self.trackers.remove(tracker)
                self.warn(f"training.loggers: {tracker.name} failed to {what} ({_one_line(exc)}); training goes on without it")

    def log(self, record: Mapping[str, Any]) -> None:
        self._each("log", lambda t: t.log(record))

    def finish(self, model_dir: Path | None) -> None:
        self._each("finish", lambda t: t.finish(model_dir))
        self.trackers = []


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _hint(exc: BaseException) -> str:
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    extra = {"mlflow": "mlflow", "tensorboardX": "tensorboard", "sqlalchemy": "mlflow", "alembic": "mlflow", "wandb": "wandb"}.get(str(missing).split(".")[0])
    return f"; install it with: pip install 'distnlp[{extra}]'" if extra else ""
