"""`distnlp train -m key=a,b other=x,y`: Hydra multirun, one training run per combination.

Jobs come in Hydra's own order (its BasicSweeper: the cartesian product, the first swept key
varying slowest) and run one after another in this process, each in `DIR/<job>` where DIR is
`training.output_dir`; with `distributed=ray` each job is its own Ray run on the same cluster.
Every job's config is composed and validated before the first one trains, so a typo costs
nothing. The sweep ends with a table sorted by best score, also written as DIR/sweep.json
and DIR/sweep.csv, and the runs' curves on shared axes in DIR/sweep_curves.png.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DistnlpError
from ..training.curves import draw_curves
from ..training.loop import TRAIN
from ..training.metrics_log import metrics_path, read_metrics
from ..training.run_identity import owned_entries
from ..training.run_summary import RunSummary, format_runs_table
from .launch import load_config, run_entry

OUTPUT_KEY = "training.output_dir"
SWEEP_JSON, SWEEP_CSV, SWEEP_CURVES = "sweep.json", "sweep.csv", "sweep_curves.png"

log = logging.getLogger(__name__)


@dataclass
class SweepJob:
    number: int
    overrides: list[str]  # this job's overrides, without training.output_dir
    swept: dict[str, str]  # the swept keys and this job's value of each
    output_dir: str
    config: dict[str, Any] = field(default_factory=dict, repr=False)


def sweep_jobs(overrides: list[str]) -> tuple[str, list[SweepJob]]:
    """The sweep directory and its jobs, every config composed and validated."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # Hydra's own job order
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        combinations = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
    except HydraException as exc:
        bad = next((o for o in overrides if not _parses(o)), "")
        raise ConfigError(bad, str(exc).strip().splitlines()[0], "check the override: key=a,b sweeps a key; see Hydra's override grammar") from None
    swept_keys = [o.get_key_element() for o in parsed if o.is_sweep_override()]
    if any(k.lstrip("+~") == OUTPUT_KEY for k in swept_keys):
        raise ConfigError(OUTPUT_KEY, "cannot be swept", f"give one {OUTPUT_KEY}=DIR; each job trains in DIR/0, DIR/1, ...")
    if not swept_keys:
        log.warning("no override sweeps a value (key=a,b); the sweep has one job")
    jobs: list[SweepJob] = []
    sweep_dir = ""
    for number, combination in enumerate(combinations):
        own = [o for o in combination if o.split("=", 1)[0].lstrip("+~") != OUTPUT_KEY]
        given = [o.split("=", 1)[1] for o in combination if o.split("=", 1)[0].lstrip("+~") == OUTPUT_KEY]
        if number == 0:
            sweep_dir = given[-1] if given else load_config(own)["training"]["output_dir"]
        job_dir = str(Path(sweep_dir) / str(number))
        config = load_config(own + [f"{OUTPUT_KEY}={job_dir}"])
        dist = config.get("distributed") or {}
        if dist.get("backend") == "ray":  # one Ray run per job, even where they share storage_path
            config["distributed"] = {**dist, "run_name": f"{dist.get('run_name') or 'distnlp'}-{number}"}
        _refuse_an_earlier_run(config, job_dir)
        swept = {k: v for k, v in (o.split("=", 1) for o in combination) if k in swept_keys}
        jobs.append(SweepJob(number, own, swept, job_dir, config))
    return sweep_dir, jobs


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_overrides([override])
    except HydraException:
        return False
    return True


def _refuse_an_earlier_run(config: dict[str, Any], job_dir: str) -> None:
    """Before any job trains: a job directory with an earlier run needs resume or overwrite (as
    one run would refuse it), so a repeated sweep does not train half of its jobs first."""
    training = config["training"]
    if not (training.get("resume") or training.get("overwrite")) and owned_entries(Path(job_dir)):
        raise ConfigError(OUTPUT_KEY, f"{job_dir} already holds an earlier run",
                          "continue the sweep with training.resume=true, replace its runs with training.overwrite=true, or choose another training.output_dir")


def run_sweep(overrides: list[str]) -> int:
    sweep_dir, jobs = sweep_jobs(overrides)
    print(f"sweep: {len(jobs)} runs in {sweep_dir}/0..{len(jobs) - 1}", flush=True)
    results: list[dict[str, Any]] = []
    try:
        for job in jobs:
            shown = " ".join(f"{k}={v}" for k, v in job.swept.items()) or "(no swept key)"
            print(f"\n[sweep {job.number + 1}/{len(jobs)}] {job.output_dir}: {shown}", flush=True)
            try:
                summary = run_entry(job.config, TRAIN)
                results.append(job_result(job, summary, error=None))
            except DistnlpError as exc:
                print(f"error: {job.output_dir}: {exc}", flush=True)
                results.append(job_result(job, {}, error=str(exc)))
    finally:
        if results:
            write_sweep_summary(Path(sweep_dir), jobs, results)
    failed = [r for r in results if r["error"]]
    if failed:
        print(f"{len(failed)} of {len(jobs)} runs failed: {', '.join(r['output_dir'] for r in failed)}")
    return 1 if failed else 0


def job_result(job: SweepJob, summary: dict[str, Any], *, error: str | None) -> dict[str, Any]:
    """One sweep.json entry, its scores read back from the run's metrics.jsonl."""
    result: dict[str, Any] = {"job": job.number, "overrides": job.overrides, "swept": job.swept, "output_dir": job.output_dir,
                              "best_score": summary.get("best_score"), "best_step": summary.get("best_step"), "final_score": None, "steps": None,
                              "scores": {}, "final_scores": {}, "error": error}
    if metrics_path(job.output_dir).is_file():
        run = RunSummary.of(job.output_dir, read_metrics(job.output_dir))
        result.update(best_score=run.best_score, best_step=run.best_step, final_score=run.final_score, steps=run.steps, scores=run.scores,
                      final_scores=run.final_scores)
    return result


def write_sweep_summary(sweep_dir: Path, jobs: list[SweepJob], results: list[dict[str, Any]]) -> None:
    ranked = rank_results(results)
    keys = list(jobs[0].swept) if jobs else []
    print_sweep_table(ranked, keys)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SWEEP_JSON).write_text(json.dumps(ranked, indent=2) + "\n")
    written = [sweep_dir / SWEEP_JSON, write_sweep_csv(sweep_dir, ranked, keys), *draw_sweep_curves(sweep_dir, ranked)]
    print(f"written: {', '.join(str(p) for p in written)}")


def rank_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best score first; runs without one (failed, or never evaluated) last, in job order."""
    return sorted(results, key=lambda r: (r["best_score"] is None, -(r["best_score"] or 0.0), r["job"]))


def print_sweep_table(ranked: list[dict[str, Any]], keys: list[str]) -> None:
    runs = [RunSummary(r["output_dir"], steps=r["steps"], final_score=r["final_score"], best_score=r["best_score"], best_step=r["best_step"],
                       scores=r["scores"]) for r in ranked]
    extra = [(k, [r["swept"].get(k, "") for r in ranked]) for k in keys]
    if any("status" in r for r in ranked):  # distnlp tune: completed, stopped early, failed
        extra.append(("STATUS", [r.get("status", "") for r in ranked]))
    print("\nsweep summary (sorted by best score):")
    print(format_runs_table(runs, extra=extra))


def write_sweep_csv(sweep_dir: Path, ranked: list[dict[str, Any]], keys: list[str]) -> Path:
    score_names = list(dict.fromkeys(n for r in ranked for n in r["scores"]))
    status = any("status" in r for r in ranked)
    with open(sweep_dir / SWEEP_CSV, "w", newline="", encoding="utf8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "output_dir", *keys, *(["status"] if status else []), "best_score", "best_step", "final_score", *score_names, "error"])
        for r in ranked:
            writer.writerow([r["job"], r["output_dir"], *[r["swept"].get(k, "") for k in keys], *([r.get("status", "")] if status else []),
                             _cell(r["best_score"]), _cell(r["best_step"]), _cell(r["final_score"]), *[_cell(r["scores"].get(n)) for n in score_names],
                             r["error"] or ""])
    return sweep_dir / SWEEP_CSV


def draw_sweep_curves(sweep_dir: Path, ranked: list[dict[str, Any]]) -> list[Path]:
    """Every run of the sweep on shared axes (as `distnlp report DIR/0 DIR/1 ...` draws them)."""
    runs = {Path(r["output_dir"]).name: read_metrics(r["output_dir"]) for r in ranked if metrics_path(r["output_dir"]).is_file()}
    return [draw_curves(runs, sweep_dir / SWEEP_CURVES)] if runs else []


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
