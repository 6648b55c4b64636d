"""Drive an annotate job: plan the splits, claim OUTPUT, annotate the unfinished splits here or
on Ray actors, then write meta.json. Rerunning the same command resumes a killed job."""
from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..version import __version__
from ..errors import CheckpointError, DistnlpError
from ..pipeline.device import pick_device
from ..pipeline.pipeline import Pipeline
from .inputs import Plan, plan_inputs
from .output import OutputDir
from .progress import Progress
from .settings import AnnotateSettings, exit_if_asked
from .split import annotate_split

log = logging.getLogger(__name__)
_MODEL_FILES = ("config.json", "labels.json", "model.safetensors")

# Annotates the unfinished splits somewhere else (Ray actors: `ray_backend.annotate.annotate_on_ray`):
# (model, plan, todo, out, settings, *, copy_format, trust_code, progress) -> None
SplitRunner = Callable[..., None]


def annotate(model: str, inputs: list[str], output: str, settings: AnnotateSettings, *, input_format: str = "auto",
             copy_format: str | None = None, device: str = "auto", trust_code: bool = False, overwrite: bool = False,
             run_splits: SplitRunner | None = None) -> dict[str, Any]:
    """Annotate every row of `inputs` with the pipeline saved at `model` into the corpus `output`;
    returns its meta.json. `run_splits`: where the splits run when not in this process (the
    launcher passes Ray's for `distributed=ray`)."""
    if settings.distributed == "ray" and run_splits is None:
        raise DistnlpError("annotate: distributed=ray needs Ray's split runner; run `distnlp annotate`, or pass "
                           "run_splits=distnlp.ray_backend.annotate.annotate_on_ray")
    fingerprint = model_fingerprint(model)  # a wrong MODEL fails before a long input scan
    plan = plan_inputs(inputs, settings.rows_per_shard, input_format)
    job = {
        "model": os.path.abspath(model), "model_sha256": fingerprint,
        "inputs": [{"path": s.path, "kind": s.kind, "rows": s.rows} for s in plan.sources],
        "rows_per_shard": settings.rows_per_shard, "copy_format": copy_format, "distnlp_version": __version__,
    }
    out = OutputDir(output)
    out.claim(job, inputs, overwrite)
    try:
        return _run(model, plan, job, out, output, settings, copy_format=copy_format, device=device, trust_code=trust_code,
                    run_splits=run_splits)
    except BaseException:
        out.release()  # refused before any split finished (a model that needs --trust-code, ...): nothing left behind
        raise


def _run(model: str, plan: Plan, job: dict[str, Any], out: OutputDir, output: str, settings: AnnotateSettings, *,
         copy_format: str | None, device: str, trust_code: bool, run_splits: SplitRunner | None) -> dict[str, Any]:
    done = out.finished(plan)
    todo = [s for s in plan.splits if s.index not in done]
    if done:
        log.info("%s: %d of %d splits already finished; annotating the other %d", output, len(done), len(plan.splits), len(todo))
    progress = Progress(plan.rows, sum(r["rows_in"] for r in done.values()))
    try:
        if todo and run_splits is not None:
            run_splits(model, plan, todo, out, settings, copy_format=copy_format, trust_code=trust_code, progress=progress)
        elif todo:
            _annotate_here(model, plan, todo, out, settings, copy_format=copy_format, device=device, trust_code=trust_code, progress=progress)
    finally:
        progress.close()
    meta = out.finish(plan, job)
    counts = meta["annotate"]
    speed = f"{progress.words_per_second:,.0f} words/s this run" if todo else "every split was already finished"
    print(f"annotated {counts['rows_out']} of {counts['rows_in']} docs ({meta['counts']['words']} words) into {output} "
          f"({speed}); {counts['rejected']} rejected (listed in {counts['rejects_file']})", file=sys.stderr)
    return meta


def _annotate_here(model: str, plan: Plan, todo: list[Any], out: OutputDir, settings: AnnotateSettings, *, copy_format: str | None,
                   device: str, trust_code: bool, progress: Progress) -> None:
    nlp = Pipeline.from_disk(model, device=pick_device(device), trust_code=trust_code)
    for n, split in enumerate(todo, 1):
        record = annotate_split(nlp, plan, split, out, settings.batch, copy_format=copy_format, on_words=progress.add_words)
        progress.add_rows(record["rows_in"])
        exit_if_asked(settings, n)


def model_fingerprint(model: str) -> str:
    """SHA-256 over the model's config, labels and weights: a resumed job must use the same model."""
    path = Path(model)
    h = hashlib.sha256()
    for name in _MODEL_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: not a saved distnlp pipeline ({name} is missing); pass a model-best/ or model-last/ directory")
        with open(path / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
