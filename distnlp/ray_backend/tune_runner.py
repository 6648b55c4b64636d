"""The Ray Tune side of `distnlp tune` (cli/tune.py): the search space as Tune domains, the
Tuner (new or restored), a line per evaluation, and what became of each trial.

The command line stays Ray-free: it describes the space as plain tuples, hands over a function
that trains trial N with given overrides, and reads back `TrialOutcome`s.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A swept key's values: ("choice", [texts]) | ("uniform", low, high) | ("loguniform", low, high)
Domain = tuple[Any, ...]
TrainTrial = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class TunerSettings:
    num_samples: int
    max_concurrent: int  # 0: as many as the cluster holds
    grid: bool  # choices enumerated (grid_search) instead of sampled
    asha: bool  # ASHA early stopping (else every trial runs to its end)
    grace_period: int
    reduction_factor: float
    max_evaluations: int  # evaluations in a whole run: ASHA's max_t
    time_budget_s: float | None
    seed: int
    resources: Mapping[str, float]  # what one trial reserves
    max_failures: int = 1  # restarts of a trial whose process died (it continues its run from its checkpoint)


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    trial_id: str
    params: dict[str, Any]  # swept key -> value (override text, or a float from an interval)
    evaluations: int  # Tune results the trial reported
    unfinished: bool  # an interrupted sweep left it pending or running
    error: str | None


def tune_domains(space: Mapping[str, Domain], grid: bool) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = {}
    for key, (kind, *args) in space.items():
        if kind == "choice":
            out[key] = tune.grid_search(list(args[0])) if grid else tune.choice(list(args[0]))
        elif kind == "uniform":
            out[key] = tune.uniform(*args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        else:
            raise ValueError(f"unknown domain {kind!r} for {key}")
    return out


def trial_number(trial_id: str) -> int:
    """Tune's trial ids end in the trial's index (`3f2a1_00003`): DIR/3 trains it."""
    return int(trial_id.rsplit("_", 1)[-1])


def _run_trial(params: dict[str, Any], *, train_trial: TrainTrial) -> None:
    from ray import tune

    train_trial(trial_number(tune.get_context().get_trial_id()), params)


def run_tuner(sweep_dir: Path, experiment: str, space: Mapping[str, Domain], train_trial: TrainTrial, settings: TunerSettings,
              resume: bool) -> list[TrialOutcome]:
    """Run (or, with `resume`, finish) the sweep whose Tune state is sweep_dir/experiment."""
    # Tune's own status tables and banners: a line per evaluation is printed instead (_Progress)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(_run_trial, train_trial=train_trial), dict(settings.resources))
    path = sweep_dir / experiment
    if resume:
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    else:
        # max_t one past the run's last evaluation: at max_t ASHA stops a trial inside its report,
        # and a trial that reached its end must finish (save model-last, return) on its own.
        scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=settings.max_evaluations + 1, grace_period=settings.grace_period,
                                   reduction_factor=settings.reduction_factor) if settings.asha else FIFOScheduler())
        tuner = tune.Tuner(
            trainable,
            param_space=tune_domains(space, settings.grid),
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=settings.num_samples, scheduler=scheduler,
                                        search_alg=BasicVariantGenerator(random_state=settings.seed, max_concurrent=settings.max_concurrent),
                                        time_budget_s=settings.time_budget_s, trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(name=experiment, storage_path=str(sweep_dir), verbose=0, callbacks=[_progress()],
                                      failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
        )
    grid = tuner.fit()
    ended = {t.trial_id: t.status for t in tune.ExperimentAnalysis(str(path)).trials}
    outcomes = []
    for result in grid:
        metrics = dict(result.metrics or {})
        trial_id = str(metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_"))
        outcomes.append(TrialOutcome(trial_number(trial_id), trial_id, dict(result.config or {}), int(metrics.get("training_iteration") or 0),
                                     unfinished=ended.get(trial_id) not in ("TERMINATED", "ERROR"),
                                     error=None if result.error is None else _one_line(result.error)))
    return sorted(outcomes, key=lambda o: o.number)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _progress() -> Any:
    from ray.tune import Callback

    class _Progress(Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            print(f"trial {trial_number(trial.trial_id)}: step {result.get('step')} score {100 * float(result['score']):.2f}", flush=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"trial {trial_number(trial.trial_id)}: ended", flush=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"trial {trial_number(trial.trial_id)}: failed", flush=True)

    return _Progress()


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def _one_line(error: BaseException) -> str:
    seen: BaseException = error
    while seen.__cause__ is not None:
        seen = seen.__cause__
    lines = [line for line in str(seen).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(seen).__name__
