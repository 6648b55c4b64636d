"""`distnlp annotate ... distributed=ray`: a Ray Data actor pool, one pipeline replica per GPU
(or N CPU actors), each annotating whole splits into their output shards.

The dataset's rows are the unfinished splits' numbers; `map_batches` hands each actor one split
at a time, and the actor reads it (any pyarrow filesystem), tokenizes, predicts and commits its
shard (annotate/output.py). Ray Data's own readers and Parquet writer are not used for the rows:
their block boundaries and file names are not stable across runs, and a resumed job must map
input rows to the same shard to skip finished work without duplicating any row. The actors run
the same `annotate_split` as the single process, so both write the same shards.
"""
from __future__ import annotations


import numpy as np
import ray
import ray.data

from ..annotate.inputs import Plan, Split
from ..annotate.output import OutputDir
from ..annotate.progress import Progress
from ..annotate.settings import AnnotateSettings, exit_if_asked
from ..annotate.split import annotate_split
from ..errors import DistnlpError
from ..pipeline.pipeline import Pipeline
from .driver import connect


class SplitAnnotator:
    """One pipeline replica; called with a batch of split numbers, returns their counts."""

    def __init__(self, model: str, plan: Plan, output: str, settings: AnnotateSettings, copy_format: str | None, trust_code: bool, gpu: bool) -> None:
        import torch

        if not gpu:
            torch.set_num_threads(settings.threads_per_actor)  # actors share the node's cores
        self.nlp = Pipeline.from_disk(model, device="cuda" if gpu else "cpu", trust_code=trust_code)
        self.plan, self.out, self.settings, self.copy_format = plan, OutputDir(output), settings, copy_format

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records, errors = [], []
        for i in batch["split"]:
            try:
                records.append(annotate_split(self.nlp, self.plan, self.plan.splits[int(i)], self.out, self.settings.batch, copy_format=self.copy_format))
                errors.append("")
            except DistnlpError as exc:  # the user's one-line error, returned as data: Ray would wrap it in pages of its own
                records.append({"split": int(i), "rows_in": 0, "words": 0})
                errors.append(str(exc))
        out = {key: np.array([r[key] for r in records], dtype=np.int64) for key in ("split", "rows_in", "words")}
        out["error"] = np.array(errors, dtype=object)
        return out


def annotate_on_ray(model: str, plan: Plan, todo: list[Split], out: OutputDir, settings: AnnotateSettings, *, copy_format: str | None,
                    trust_code: bool, progress: Progress) -> None:
    connect(settings.connection())
    gpu = _use_gpu(settings)
    actors = settings.num_workers or (int(ray.cluster_resources().get("GPU", 0)) if gpu else 2)
    actors = max(1, min(actors, len(todo)))
    ray.data.DataContext.get_current().enable_progress_bars = False  # the driver shows one bar, with words/s
    splits = ray.data.from_items([{"split": s.index} for s in todo], override_num_blocks=len(todo))
    annotated = splits.map_batches(
        SplitAnnotator, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"model": str(model), "plan": plan, "output": str(out.path), "settings": settings,
                               "copy_format": copy_format, "trust_code": trust_code, "gpu": gpu},
        num_gpus=1 if gpu else 0, num_cpus=0 if gpu else settings.threads_per_actor,
    )
    try:
        for n, batch in enumerate(annotated.iter_batches(batch_size=1, batch_format="numpy"), 1):
            if batch["error"][0]:
                raise DistnlpError(str(batch["error"][0]))
            progress.add_words(int(batch["words"].sum()))
            progress.add_rows(int(batch["rows_in"].sum()))
            exit_if_asked(settings, n)
    except DistnlpError:
        raise
    except Exception as exc:  # anything else an actor raised arrives wrapped by Ray: show its last line
        raise DistnlpError(_first_line(exc)) from exc


def _use_gpu(settings: AnnotateSettings) -> bool:
    if settings.use_gpu == "auto":
        return ray.cluster_resources().get("GPU", 0) >= 1
    return settings.use_gpu == "true"


def _first_line(exc: BaseException) -> str:
    """The innermost cause's message (Ray wraps the actor's exception in its own types)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if "error" in text.lower() or ":" in text else f"annotate on Ray failed: {text}"
