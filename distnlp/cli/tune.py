"""`distnlp tune [overrides] tune.num_samples=N tune.max_concurrent=K training.output_dir=DIR`:
a hyperparameter search on Ray Tune, trials in parallel, ASHA stopping the weak ones early.

The search space is written with Hydra's sweep syntax (cli/tune_space.py). Each trial is a
distnlp training run in DIR/<trial number>: in its own Tune process (distributed=single; trial
resources tune.cpus_per_trial, tune.gpus_per_trial) or on its own Ray Train replicas
(distributed=ray: distributed.num_workers workers with their GPUs). Every evaluation is a Tune
result whose metric is the run's configured score (training.score_weights), so ASHA compares
trials evaluation by evaluation. Tune's experiment state lives in DIR/tune: after an interrupted
sweep (Ctrl-C, a lost driver) the same command with tune.resume=true finishes it; finished
trials are not run again, an unfinished one resumes from its last checkpoint.

The sweep ends as `train -m` does (a table sorted by best score, DIR/sweep.csv and
DIR/sweep_curves.png) plus DIR/sweep.json with every trial's status (completed, stopped early,
failed), and the best trial's overrides as DIR/experiment/best.yaml:
`distnlp train --config-dir DIR experiment=best` trains it again.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config.settings import DistributedSettings
from ..errors import ConfigError, DistnlpError, did_you_mean
from ..ray_backend.driver import connect, train_on_ray
from ..ray_backend.tune_report import TUNE_REPORT, train_to_tune_callback
from ..ray_backend.tune_runner import TunerSettings, cluster_gpus, run_tuner
from ..training.loop import TRAIN, checkpoint_dir
from ..training.run_identity import RUN_FILE, committed_checkpoints, owned_entries
from .compose import conf_dir
from .config_dirs import add_config_dir_argument, config_dir_overrides
from .launch import load_config, run_entry, write_config_yaml
from .sweep import OUTPUT_KEY, SWEEP_JSON, SweepJob, draw_sweep_curves, job_result, print_sweep_table, rank_results, write_sweep_csv
from .tune_space import SearchSpace, trial_overrides

TUNE_DIR = "tune"  # Tune's experiment state, under the sweep directory
REQUEST_FILE = "tune_request.json"  # what the sweep was started with: a resume must ask the same
ENDED_DIR = "ended"  # DIR/ended/<trial>.json: the run of that trial reached its end (not stopped by ASHA)
BEST_NAME = "best"  # DIR/experiment/best.yaml
COMPLETED, STOPPED, FAILED, UNFINISHED = "completed", "stopped early", "failed", "unfinished"


@dataclass(frozen=True)
class TuneSettings:
    """`tune.*` on the command line (not part of a run's config: a trial never sees them)."""

    num_samples: int = 1  # trials (with search=grid: repeats of the grid)
    max_concurrent: int = 0  # 0 = as many as the cluster's resources hold
    search: str = "random"  # random | grid
    scheduler: str = "asha"  # asha | fifo (every trial runs to its end)
    grace_period: int = 1  # evaluations every trial gets before ASHA may stop it
    reduction_factor: float = 2.0  # ASHA keeps the best 1/reduction_factor at each rung
    max_evaluations: int | None = None  # ASHA's max_t; null = the run's max_steps / eval_frequency
    time_budget_s: float | None = None  # stop the sweep after this long (running trials are stopped)
    cpus_per_trial: float | None = None  # null: distributed.num_threads, else 1 (distributed=ray: the trial's driver takes none)
    gpus_per_trial: float | None = None  # null: 1 where the cluster has GPUs and distributed.use_gpu allows (distributed=single)
    seed: int | None = None  # the random search's seed; null = the config's seed
    max_failures: int = 1  # a trial whose process dies starts again that often, continuing its run from its checkpoint
    resume: bool = False  # finish the interrupted sweep in training.output_dir

    @classmethod
    def split(cls, overrides: list[str]) -> tuple["TuneSettings", list[str]]:
        """The tune.* overrides read into settings; the rest left for the training config."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        rest: list[str] = []
        for text in overrides:
            key, sep, raw = text.partition("=")
            if not key.startswith("tune."):
                rest.append(text)
                continue
            name = key[len("tune."):]
            if name not in fields or not sep:
                raise ConfigError(key, "unknown key" if name not in fields else "needs a value", did_you_mean(name, list(fields)))
            values[name] = _typed(key, yaml.safe_load(raw) if raw else None, fields[name].type)
        settings = cls(**values)
        if settings.num_samples < 1 or settings.max_concurrent < 0 or settings.grace_period < 1 or settings.reduction_factor <= 1 or settings.max_failures < 0:
            raise ConfigError("tune", "num_samples and grace_period must be at least 1, max_concurrent at least 0, reduction_factor above 1",
                              "e.g. tune.num_samples=8 tune.max_concurrent=2")
        if settings.scheduler not in ("asha", "fifo"):
            raise ConfigError("tune.scheduler", f"unknown scheduler {settings.scheduler!r}", "use asha or fifo")
        return settings, rest


def _typed(key: str, value: Any, annotation: Any) -> Any:
    text = str(annotation)
    if value is None:
        if "None" not in text:
            raise ConfigError(key, "cannot be null", "give a value")
        return None
    if text.startswith("int") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if text.startswith("float") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if text == "bool" and isinstance(value, bool):
        return value
    if text == "str" and isinstance(value, str):
        return value
    raise ConfigError(key, f"expected {text.split(' |')[0]}, got {value!r}", "see `distnlp tune --help`")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search hyperparameters on Ray Tune: parallel trials, ASHA early stopping, resumable",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides; swept with choice(...), range(...), interval(...), "
                   "tag(log,interval(...)) or a,b; tune.* settings: " + ", ".join(f.name for f in dataclasses.fields(TuneSettings)))
    add_config_dir_argument(p)
    p.set_defaults(run=run_tune)


# --- the driver --------------------------------------------------------------------------------
def run_tune(args: argparse.Namespace) -> int:
    settings, overrides = TuneSettings.split(list(args.overrides))
    base = config_dir_overrides(args.config_dir)
    space = SearchSpace.parse(overrides, OUTPUT_KEY)
    for key in ("training.resume", "training.overwrite"):  # each trial decides these for its own run
        if any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides):
            raise ConfigError(key, "is not for a sweep", "finish an interrupted sweep with tune.resume=true; start a new one in another training.output_dir")
    example = load_config(base + space.example_overrides())  # a typo costs nothing: checked before Ray starts
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == OUTPUT_KEY]
    sweep_dir = Path(given[-1] if given else example["training"]["output_dir"]).resolve()
    domains = space.domains(settings.search)
    if not space.swept:
        print("tune: no override sweeps a value (key=a,b, choice(...), interval(...)); every trial has the same config")
    request = {"fixed": base + space.fixed, "swept": {k: str(v) for k, v in space.swept.items()}, "search": settings.search}
    _claim(sweep_dir, request, settings)

    dist = DistributedSettings.from_config(example)
    connect(dist)
    tuner = TunerSettings(num_samples=settings.num_samples, max_concurrent=settings.max_concurrent, grid=settings.search == "grid",
                          asha=settings.scheduler == "asha", grace_period=settings.grace_period, reduction_factor=settings.reduction_factor,
                          max_evaluations=settings.max_evaluations or _evaluations(example), time_budget_s=settings.time_budget_s,
                          seed=settings.seed if settings.seed is not None else int(example.get("seed") or 0),
                          resources=trial_resources(dist, settings, cluster_gpus()), max_failures=settings.max_failures)
    if settings.resume:
        print(f"tune: finishing the sweep in {sweep_dir}", flush=True)
    else:
        trials = space.grid_size() * settings.num_samples if settings.search == "grid" else settings.num_samples
        print(f"tune: {trials} trials in {sweep_dir}/<trial>, {settings.max_concurrent or 'as many as fit'} at a time, "
              f"{'ASHA' if tuner.asha else 'no'} early stopping on the score", flush=True)
    started = time.perf_counter()
    outcomes = run_tuner(sweep_dir, TUNE_DIR, domains, functools.partial(train_trial, fixed=base + space.fixed, sweep_dir=str(sweep_dir), cwd=os.getcwd()),
                         tuner, resume=settings.resume)
    results = [trial_result(o, sweep_dir) for o in outcomes]
    write_tune_summary(sweep_dir, results, list(space.swept), settings, time.perf_counter() - started)
    unfinished = sum(o.unfinished for o in outcomes)
    if unfinished:
        print(f"the sweep was interrupted before every trial ended ({unfinished} unfinished); finish it with the same command and tune.resume=true", flush=True)
        return 130
    return 1 if any(r["status"] == FAILED for r in results) else 0


def _claim(sweep_dir: Path, request: dict[str, Any], settings: TuneSettings) -> None:
    """A new sweep needs an empty place; a resumed one must be asked exactly as it was started."""
    state, recorded = sweep_dir / TUNE_DIR, sweep_dir / REQUEST_FILE
    if settings.resume:
        if not state.is_dir() or not recorded.is_file():
            raise ConfigError("tune.resume", f"{sweep_dir} holds no sweep to resume", f"start it without tune.resume=true, or point {OUTPUT_KEY} at the sweep")
        before = json.loads(recorded.read_text())
        if before != request:
            changed = [k for k in request if request[k] != before.get(k)]
            raise ConfigError("tune.resume", f"the overrides differ from those the sweep in {sweep_dir} started with ({', '.join(changed)})",
                              f"resume with the same overrides ({' '.join(before['fixed'])}), or start a new sweep in another {OUTPUT_KEY}")
        return
    if state.exists() or recorded.exists() or (sweep_dir / ENDED_DIR).exists() or owned_entries(sweep_dir):
        raise ConfigError(OUTPUT_KEY, f"{sweep_dir} already holds a sweep or a run",
                          f"finish an interrupted sweep with tune.resume=true, or choose another {OUTPUT_KEY}")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(request, indent=2) + "\n")


def trial_resources(dist: Any, settings: TuneSettings, cluster_gpus: float) -> dict[str, float]:
    """What Tune reserves for one trial. On Ray Train replicas the trial's own process only waits
    (its workers reserve their CPUs and GPUs themselves), so it takes almost no CPU."""
    if dist.backend == "ray":  # Tune refuses an empty request: a hundredth of a CPU
        return {"CPU": settings.cpus_per_trial or 0.01}
    cpus = settings.cpus_per_trial or float(dist.num_threads or 1)
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if dist.use_gpu is not False and cluster_gpus >= 1 else 0.0
    return {"CPU": cpus, "GPU": gpus} if gpus else {"CPU": cpus}


def _evaluations(config: dict[str, Any]) -> int:
    """Evaluations in a whole run (ASHA's max_t): max_steps / eval_frequency, else a generous 100."""
    training = config["training"]
    if training.get("max_steps"):
        return max(1, math.ceil(int(training["max_steps"]) / int(training["eval_frequency"])))
    return 100


# --- one trial (runs in Tune's trial process) ---------------------------------------------------
def train_trial(number: int, params: dict[str, Any], *, fixed: list[str], sweep_dir: str, cwd: str) -> None:
    """Train trial `number` in DIR/<number> (in Tune's trial process); a trial started again after
    an interruption continues its run. Relative paths in the overrides (corpus.train=corpus/x)
    mean what they meant where `distnlp tune` was run: Tune starts trials in their own directory."""
    if Path(cwd).is_dir():
        os.chdir(cwd)
    try:
        _train_trial(number, params, fixed=fixed, sweep_dir=sweep_dir)
    except DistnlpError as exc:
        # Tune sends a trial's error to the driver pickled; distnlp's errors take several
        # arguments and do not survive that. Their one line is what the trial table shows.
        raise RuntimeError(str(exc)) from None


def _train_trial(number: int, params: dict[str, Any], *, fixed: list[str], sweep_dir: str) -> None:
    output_dir = Path(sweep_dir) / str(number)
    config = load_config(fixed + trial_overrides(params) + [f"{OUTPUT_KEY}={output_dir}"])
    dist = config["distributed"]
    if dist["backend"] == "ray":  # one Ray run per trial, even where trials share storage_path
        config["distributed"] = {**dist, "run_name": f"{dist.get('run_name') or 'distnlp'}-{number}"}
    config["training"].update(_continue(config, output_dir))
    if config["distributed"]["backend"] == "ray":
        summary = train_on_ray(config, TRAIN, on_prepared=lambda: write_config_yaml(config, str(output_dir)), callbacks=[train_to_tune_callback()])
    else:
        training = config["training"]
        training["loggers"] = [*(training.get("loggers") or []), {"_use_": TUNE_REPORT}]  # every evaluation, as a Tune result
        summary = run_entry(config, TRAIN)
    # A trial that ASHA stops never gets here (Tune ends its process inside a report).
    ended = Path(sweep_dir) / ENDED_DIR / f"{number}.json"
    ended.parent.mkdir(parents=True, exist_ok=True)
    ended.write_text(json.dumps({"trial": number, "stop_reason": summary.get("stop_reason")}) + "\n")


def _continue(config: dict[str, Any], output_dir: Path) -> dict[str, bool]:
    """A trial started again (resumed sweep, or its process lost): continue its run from its last
    checkpoint, or start it over where it never reached one."""
    if not (output_dir / RUN_FILE).is_file():
        return {}
    run_id = json.loads((output_dir / RUN_FILE).read_text())["run_id"]
    settings = TRAIN.settings(config)
    dist = settings.distributed
    where = [Path(dist.storage_path or output_dir / "ray") / dist.run_name] if dist.backend == "ray" else [checkpoint_dir(settings.loop)]
    return {"resume": True} if committed_checkpoints(where, run_id) else {"overwrite": True}


# --- the summary --------------------------------------------------------------------------------
def trial_result(outcome: Any, sweep_dir: Path) -> dict[str, Any]:
    """One trial's sweep.json entry: its overrides, status and scores (read from its metrics.jsonl)."""
    number = outcome.number
    overrides = trial_overrides(outcome.params)
    swept = dict(o.split("=", 1) for o in overrides)
    job = SweepJob(number, overrides, swept, str(sweep_dir / str(number)))
    if outcome.unfinished:
        status = UNFINISHED
    elif outcome.error is not None:
        status = FAILED
    else:  # a trial that ASHA stopped never wrote its end (train_trial)
        status = COMPLETED if (sweep_dir / ENDED_DIR / f"{number}.json").is_file() else STOPPED
    entry = job_result(job, {}, error=outcome.error if status == FAILED else None)
    entry.update(trial_id=outcome.trial_id, status=status, evaluations=outcome.evaluations)
    return entry


def write_tune_summary(sweep_dir: Path, results: list[dict[str, Any]], keys: list[str], settings: TuneSettings, wall_s: float) -> None:
    ranked = rank_results(results)
    print_sweep_table(ranked, keys)
    best = next((r for r in ranked if r["best_score"] is not None), None)
    best_yaml = write_best_experiment(sweep_dir, best) if best is not None else None
    counts = {s: sum(r["status"] == s for r in ranked) for s in (COMPLETED, STOPPED, FAILED, UNFINISHED)}
    summary = {"metric": "score", "mode": "max", "search": settings.search, "scheduler": settings.scheduler, "wall_seconds": round(wall_s, 1),
               **{k.replace(" ", "_"): v for k, v in counts.items()},
               "best": None if best is None else {"trial": best["job"], "score": best["best_score"], "overrides": best["overrides"],
                                                   "experiment": str(best_yaml)},
               "trials": ranked}
    (sweep_dir / SWEEP_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    written = [sweep_dir / SWEEP_JSON, write_sweep_csv(sweep_dir, ranked, keys), *draw_sweep_curves(sweep_dir, ranked)]
    print(f"\n{counts[COMPLETED]} completed, {counts[STOPPED]} stopped early, {counts[FAILED]} failed"
          + (f", {counts[UNFINISHED]} unfinished" if counts[UNFINISHED] else ""))
    if best is not None:
        print(f"best: trial {best['job']} ({100 * best['best_score']:.2f}): {' '.join(best['overrides']) or '(the base config)'}")
        print(f"train it again: distnlp train --config-dir {sweep_dir} experiment={BEST_NAME}")
    print(f"written: {', '.join(str(p) for p in written + ([best_yaml] if best_yaml else []))}")


def write_best_experiment(sweep_dir: Path, best: dict[str, Any]) -> Path:
    """The best trial as an experiment overlay: the sweep's fixed overrides and the trial's values,
    training in DIR/best (`distnlp train --config-dir DIR experiment=best`)."""
    request = json.loads((sweep_dir / REQUEST_FILE).read_text())
    overrides = [o for o in request["fixed"] if not o.startswith("hydra.")] + list(best["overrides"])
    overrides.append(f"{OUTPUT_KEY}={sweep_dir / BEST_NAME}")
    text = experiment_yaml(overrides, header=[f"The best trial of `distnlp tune` in {sweep_dir}: trial {best['job']}, score {best['best_score']:.4f}.",
                                              f"Train it again: distnlp train --config-dir {sweep_dir} experiment={BEST_NAME}"])
    path = sweep_dir / "experiment" / f"{BEST_NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def experiment_yaml(overrides: list[str], header: list[str]) -> str:
    """Overrides as an experiment overlay: a group choice (encoder=transformer) becomes a defaults
    entry, an experiment the sweep was based on is included first, a dotted key a nested value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    defaults: list[Any] = []
    values: dict[str, Any] = {}
    for parsed in OverridesParser.create().parse_overrides(overrides):
        key = parsed.key_or_group
        if key == "experiment":
            defaults.insert(0, parsed.value())  # relative to experiment/: the overlay it was run with
        elif (conf_dir() / key.replace(".", "/")).is_dir():
            defaults.append({f"override /{key.replace('.', '/')}": parsed.value()})
        else:
            node = values
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = parsed.value()
    body: dict[str, Any] = {"defaults": [*defaults, "_self_"], **values}
    lines = ["# @package _global_", *(f"# {h}" for h in header)]
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)
