"""Drive an annotate job: plan the splits, claim OUTPUT, annotate the unfinished splits here or
on Ray actors, then write meta.json. Rerunning the same command resumes a killed job."""
from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import CheckpointError
from .inputs import Plan, plan_inputs
from .output import OutputDir
from .progress import Progress
from .settings import AnnotateSettings
from .split import annotate_split

log = logging.getLogger(__name__)
_MODEL_FILES = ("config.json", "labels.json", "model.safetensors")


def annotate(model: str, inputs: list[str], output: str, settings: AnnotateSettings, *, input_format: str = "auto",
             copy_format: str | None = None, device: str = "auto", trust_code: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Annotate every row of `inputs` with the pipeline saved at `model` into the corpus `output`;
    returns its meta.json."""
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
        return _run(model, plan, job, out, output, settings, copy_format=copy_format, device=device, trust_code=trust_code)
    except BaseException:
        out.release()  # refused before any split finished (a model that needs --trust-code, ...): nothing left behind
        raise


def _run(model: str, plan: Plan, job: dict[str, Any], out: OutputDir, output: str, settings: AnnotateSettings, *,
         copy_format: str | None, device: str, trust_code: bool) -> dict[str, Any]:
    done = out.finished(plan)
    todo = [s for s in plan.splits if s.index not in done]
    if done:
        log.info("%s: %d of %d splits already finished; annotating the other %d", output, len(done), len(plan.splits), len(todo))
    progress = Progress(plan.rows, sum(r["rows_in"] for r in done.values()))
    try:
        if todo and settings.distributed == "ray":
            from ..ray_backend.annotate import annotate_on_ray

            annotate_on_ray(model, plan, todo, out, settings, copy_format=copy_format, trust_code=trust_code, progress=progress)
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
    from ..pipeline.device import pick_device
    from ..pipeline.pipeline import Pipeline

    nlp = Pipeline.from_disk(model, device=pick_device(device), trust_code=trust_code)
    for n, split in enumerate(todo, 1):
        record = annotate_split(nlp, plan, split, out, settings.batch, copy_format=copy_format, on_words=progress.add_words)
        progress.add_rows(record["rows_in"])
        exit_if_asked(settings, n)


def exit_if_asked(settings: AnnotateSettings, splits_done: int) -> None:
    """debug.exit_after_splits: stop as a killed job would (no cleanup, no meta.json)."""
    if settings.exit_after_splits and splits_done >= settings.exit_after_splits:
        sys.stderr.flush()
        os._exit(3)


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
