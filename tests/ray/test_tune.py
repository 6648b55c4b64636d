"""`distnlp tune`: Hydra sweep syntax as a Ray Tune search space, trials in parallel on a local
Ray, ASHA stopping the weak ones (read back from the trial records), an interrupted sweep
finished without running its finished trials again, and the best trial retrained exactly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from distnlp.cli.main import main
from distnlp.cli.tune import TuneSettings, experiment_yaml
from distnlp.cli.tune_space import SearchSpace, trial_overrides
from distnlp.errors import ConfigError
from distnlp.training.metrics_log import read_metrics

ROOT = Path(__file__).resolve().parents[2]
# 4 evaluations per trial (steps 3, 6, 9, 12), one torch thread each: scores are the same run to run
TINY = ["encoder.width=32", "distributed.num_threads=1", "training.max_eval_docs=3", "training.max_steps=12", "training.eval_frequency=3",
        "training.checkpoints_to_keep=1"]
# A learn rate of 1e-7 scores below 2e-3 at the first evaluation (step 3), on both seeds
GRID = ["training.optimizer.learn_rate=choice(0.002,0.0000001)", "seed=1,2", "tune.search=grid"]


def run_tune(*args: str, wait: bool = True) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "distnlp.cli.main", "tune", *TINY, *args]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def eval_scores(run_dir: Path) -> list[tuple[int, float]]:
    return [(int(e["step"]), float(e["score"])) for e in read_metrics(run_dir).evals]


# --- the search space and settings (no Ray) ------------------------------------------------------
def test_hydra_sweep_syntax_becomes_tune_domains() -> None:
    from ray.tune.search.sample import Categorical, Float

    from distnlp.ray_backend.tune_runner import tune_domains

    space = SearchSpace.parse(["training.optimizer.learn_rate=tag(log,interval(1e-4,1e-2))", "encoder.width=64,96", "seed=range(1,4)",
                               "components.ner.grad_factor=interval(0.2,1.0)", "training.max_steps=5", "training.output_dir=/x"],
                              "training.output_dir")
    assert space.fixed == ["training.max_steps=5"]  # the output directory is the sweep's, not a trial's
    assert space.domains("random") == {"training.optimizer.learn_rate": ("loguniform", 1e-4, 1e-2), "encoder.width": ("choice", ["64", "96"]),
                                       "seed": ("choice", ["1", "2", "3"]), "components.ner.grad_factor": ("uniform", 0.2, 1.0)}
    domains = tune_domains(space.domains("random"), grid=False)
    rate = domains["training.optimizer.learn_rate"]
    assert isinstance(rate, Float) and type(rate.sampler).__name__ == "_LogUniform" and (rate.lower, rate.upper) == (1e-4, 1e-2)
    assert isinstance(domains["encoder.width"], Categorical) and domains["encoder.width"].categories == ["64", "96"]
    assert type(domains["components.ner.grad_factor"].sampler).__name__ == "_Uniform"
    assert trial_overrides({"encoder.width": "96", "components.ner.grad_factor": 0.25}) == ["encoder.width=96", "components.ner.grad_factor=0.25"]
    assert space.example_overrides()[1:] == ["training.optimizer.learn_rate=0.0001", "encoder.width=64", "seed=1", "components.ner.grad_factor=0.2"]
    grid = SearchSpace.parse(["encoder.width=64,96", "seed=range(1,4)"], "training.output_dir")
    assert tune_domains(grid.domains("grid"), grid=True)["encoder.width"] == {"grid_search": ["64", "96"]} and grid.grid_size() == 6
    with pytest.raises(ConfigError, match="an interval has no grid"):
        space.domains("grid")
    with pytest.raises(ConfigError, match="training.output_dir: cannot be swept"):
        SearchSpace.parse(["training.output_dir=a,b"], "training.output_dir")


def test_tune_settings_are_checked_in_one_line() -> None:
    settings, rest = TuneSettings.split(["tune.num_samples=8", "tune.max_concurrent=2", "tune.time_budget_s=60", "seed=3"])
    assert (settings.num_samples, settings.max_concurrent, settings.time_budget_s, rest) == (8, 2, 60.0, ["seed=3"])
    with pytest.raises(ConfigError, match=r"tune.num_sample: unknown key \(did you mean 'num_samples'"):
        TuneSettings.split(["tune.num_sample=8"])
    with pytest.raises(ConfigError, match="tune.max_concurrent: expected int, got 'two'"):
        TuneSettings.split(["tune.max_concurrent=two"])
    with pytest.raises(ConfigError, match="tune.scheduler: unknown scheduler 'pbt'"):
        TuneSettings.split(["tune.scheduler=pbt"])


def test_the_best_overrides_become_an_experiment_overlay() -> None:
    text = experiment_yaml(["experiment=ewt_cnn", "encoder=transformer", "training.optimizer.learn_rate=0.002", "seed=2",
                            "training.output_dir=/sweep/best"], header=["best"])
    assert text.startswith("# @package _global_\n# best\n")
    body = yaml.safe_load(text)
    assert body["defaults"] == ["ewt_cnn", {"override /encoder": "transformer"}, "_self_"]
    assert body["training"] == {"optimizer": {"learn_rate": 0.002}, "output_dir": "/sweep/best"} and body["seed"] == 2


def test_a_typo_or_a_used_directory_costs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["tune", "training.optimizer.learn_rat=choice(0.001,0.002)", f"training.output_dir={out}"]) == 1
    assert "training.optimizer.learn_rat: unknown key" in capsys.readouterr().err and not out.exists()
    (out / "tune").mkdir(parents=True)
    assert main(["tune", "seed=1,2", *TINY, f"training.output_dir={out}"]) == 1
    assert "already holds a sweep or a run" in capsys.readouterr().err
    assert main(["tune", "seed=1,2", *TINY, f"training.output_dir={tmp_path / 'other'}", "tune.resume=true"]) == 1
    assert "holds no sweep to resume" in capsys.readouterr().err
    assert main(["tune", "seed=1,2", *TINY, f"training.output_dir={tmp_path / 'other'}", "training.resume=true"]) == 1
    assert "training.resume: is not for a sweep (finish an interrupted sweep with tune.resume=true" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


# --- sweeps on a local Ray ---------------------------------------------------------------------
@pytest.mark.ray
def test_asha_stops_the_weak_trials_and_the_best_retrains_to_its_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sweep"
    # relative corpus paths mean what they mean where `distnlp tune` runs (Tune starts trials elsewhere)
    proc = run_tune(*GRID, "tune.max_concurrent=2", "corpus.train=distnlp/demo_data/train", "corpus.dev=distnlp/demo_data/dev",
                    f"training.output_dir={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "sweep.json").read_text())
    trials = {t["job"]: t for t in summary["trials"]}
    assert sorted(trials) == [0, 1, 2, 3] and (summary["completed"], summary["failed"]) == (len(os.listdir(out / "ended")), 0)
    for number, trial in trials.items():
        steps = [s for s, _ in eval_scores(out / str(number))]
        assert trial["evaluations"] == len(steps) and trial["steps"] == steps[-1]
        if trial["status"] == "completed":
            assert steps == [3, 6, 9, 12]
        else:  # ASHA's rule: stopped at a rung, below the score another trial had there
            assert trial["status"] == "stopped early" and len(steps) < 4
            rung = len(steps)
            others = [eval_scores(out / str(n))[rung - 1][1] for n in trials if n != number and len(eval_scores(out / str(n))) >= rung]
            assert eval_scores(out / str(number))[-1][1] < max(others)
    # the 1e-7 trials start when a 2e-3 trial has passed the first rung, and score below both there
    assert [trials[n]["status"] for n in (2, 3)] == ["stopped early"] * 2, trials
    assert trials[2]["swept"] == {"training.optimizer.learn_rate": "1e-07", "seed": "1"}
    best = summary["best"]
    assert best["trial"] == summary["trials"][0]["job"] and best["score"] == max(t["best_score"] for t in summary["trials"])
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("job,output_dir,training.optimizer.learn_rate,seed,status,best_score") and len(rows) == 5
    assert (out / "sweep_curves.png").stat().st_size > 10_000
    # the best trial's config, as an experiment, trains to the same scores
    monkeypatch.chdir(ROOT)  # where the sweep ran: its relative corpus paths
    assert main(["train", "--config-dir", str(out), "experiment=best"]) == 0
    assert eval_scores(out / "best") == eval_scores(out / str(best["trial"]))


@pytest.mark.ray
def test_an_interrupted_sweep_finishes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["seed=1,2,3", "tune.search=grid", "tune.scheduler=fifo", "tune.max_concurrent=1", f"training.output_dir={out}"]
    driver = run_tune(*args, wait=False)
    assert isinstance(driver, subprocess.Popen) and driver.stdout is not None
    seen = []
    for line in driver.stdout:  # interrupt (Ctrl-C) once trial 1 has a checkpoint (step 6: written after its evaluation)
        seen.append(line)
        if line.startswith("trial 1: step 9"):
            driver.send_signal(signal.SIGINT)
            break
    rest, _ = driver.communicate(timeout=300)
    text = "".join(seen) + rest
    assert driver.returncode == 130 and "tune.resume=true" in text, text[-3000:]
    first = (out / "0" / "metrics.jsonl").read_bytes()
    interrupted = (out / "1" / "metrics.jsonl").read_bytes()
    assert not (out / "2").exists() and not (out / "ended" / "1.json").exists()
    time.sleep(1)  # a rewritten file would show a newer mtime too
    mtime = (out / "0" / "metrics.jsonl").stat().st_mtime_ns

    proc = run_tune(*args, "tune.resume=true")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trial 0:" not in proc.stdout  # finished: not run again
    assert (out / "0" / "metrics.jsonl").read_bytes() == first and (out / "0" / "metrics.jsonl").stat().st_mtime_ns == mtime
    resumed = (out / "1" / "metrics.jsonl").read_bytes()
    assert resumed.startswith(interrupted) and len(resumed) > len(interrupted)  # continued from its checkpoint, not started over
    summary = json.loads((out / "sweep.json").read_text())
    assert sorted((t["job"], t["status"], t["steps"]) for t in summary["trials"]) == [(n, "completed", 12) for n in range(3)]



def _trial_processes(driver: int) -> list[int]:
    """Pids of the trial processes of this driver's private Ray (Ray names them after the
    trainable's actor method; its workers descend from the raylet the driver started). Trial
    processes of an earlier test's Ray may still be exiting: they descend from another driver."""
    def parent(pid: int) -> int:
        try:
            return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                continue
        except OSError:
            continue
        pid, ancestors = int(entry.name), []
        while pid > 1 and len(ancestors) < 8:
            pid = parent(pid)
            ancestors.append(pid)
        if driver in ancestors:
            found.append(int(entry.name))
    return found


@pytest.mark.ray
def test_a_killed_trial_starts_again_and_continues_its_run(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    driver = run_tune("seed=choice(1,2)", "tune.num_samples=1", "training.max_steps=15", f"training.output_dir={out}", wait=False)
    assert isinstance(driver, subprocess.Popen) and driver.stdout is not None
    seen = []
    for line in driver.stdout:  # kill the trial's process once it has a checkpoint (step 3's, written after its evaluation)
        seen.append(line)
        if line.startswith("trial 0: step 6"):
            pids = _trial_processes(driver.pid)
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            run_id = json.loads((out / "0" / "run.json").read_text())["run_id"]
            break
    rest, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, "".join(seen)[-2000:] + rest[-3000:]
    steps = [s for s, _ in eval_scores(out / "0")]
    assert steps[:2] == [3, 6] and steps[-3:] == [9, 12, 15], steps
    # the same run, continued from its checkpoint (step 3's or 6's): one started over gets a new run id
    assert json.loads((out / "0" / "run.json").read_text())["run_id"] == run_id
    trial, = json.loads((out / "sweep.json").read_text())["trials"]
    assert trial["status"] == "completed"


@pytest.mark.ray
def test_a_failed_trial_is_recorded_with_its_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = run_tune("seed=choice(1,2)", "tune.num_samples=1", "tune.max_failures=0", "corpus.train=nowhere/train", f"training.output_dir={out}")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    trial, = json.loads((out / "sweep.json").read_text())["trials"]
    assert trial["status"] == "failed" and "nowhere/train: no meta.json here: not a converted corpus" in trial["error"], trial
    assert "failed" in (out / "sweep.csv").read_text().splitlines()[1]
