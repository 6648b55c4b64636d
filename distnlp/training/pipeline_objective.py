"""The pipeline's heads as the loop's objective: featurize, per-head losses, evaluate on the dev
corpus (counts merged across ranks), spaCy's console table, `model-best/` and `model-last/`."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import registry
from ..config.settings import CorpusSettings, EvaluationSettings, RunSettings
from ..data.doc import Doc
from ..data.mixture import CORPUS_KEY, open_training_stream
from ..data.stream import read_docs
from ..errors import ConfigError
from ..pipeline.pipeline import Batch, Pipeline
from ..pipeline.pretrained_weights import load_pretrained_tok2vec
from ..scoring import Scorer, combine_score
from ..vectors.table import Vectors
from .batches import ResumableBatches
from .console import Console, Progress, TerminalConsole, progress_or_silent
from .curves import redraw_run_curves
from .engine import LoopState, SavePoint
from .env import WorkerEnv
from .labels import pipeline_labels
from .logger import TrainingLogger
from .optim import ParameterAverages
from .step import Reducer, StepResult, optimizer_step
from .run_identity import RUN_FILE
from .trackers import TrackerFanout, start_trackers
from .virtual_ranks import DataRanks, data_rank_generators, split_hosted


def load_vectors(config: Mapping[str, Any]) -> Any:
    """initialize.vectors: a vectors directory, or a registered vectors object {_use_: ...}."""
    setting = (config.get("initialize") or {}).get("vectors")
    if not setting:
        return None
    if isinstance(setting, Mapping):
        return registry.resolve(setting, "initialize.vectors")
    if not Path(setting).exists():
        raise ConfigError("initialize.vectors", f"directory not found: {setting}", "create it with `distnlp init vectors`")

    return Vectors.from_disk(setting)


def build_pipeline(config: Mapping[str, Any], corpus: CorpusSettings | None = None) -> Pipeline:
    """A fresh pipeline for the config, labels from the training corpus (`corpus`: the run's
    settings; read from the config where a caller outside a run has none)."""
    registry.import_code(config.get("code"))
    train_paths = [e.path for e in (corpus or CorpusSettings.from_config(config)).train_corpora()]
    labels = pipeline_labels(config, train_paths)  # several corpora: the union of their labels
    nlp = Pipeline(config, labels, load_vectors(config))
    if not nlp.pipe_names:
        raise ConfigError("nlp.pipeline", "no component has labels in the training corpus", f"check corpus.train ({', '.join(train_paths)}) and the components' columns")
    init_tok2vec = (config.get("initialize") or {}).get("init_tok2vec")
    if init_tok2vec:
        load_pretrained_tok2vec(nlp, init_tok2vec, config)
    return nlp


def score_weights(config: Mapping[str, Any], evaluation: EvaluationSettings, nlp: Pipeline) -> dict[str, float | None]:
    if evaluation.score_weights:
        return dict(evaluation.score_weights)
    weights: dict[str, float | None] = {}
    for name in nlp.pipe_names:
        weights.update(config["components"][name].get("score_weights") or {})
    return weights


class PipelineLosses:
    """The step-level part of the objective: counts and loss sums of every head."""

    def __init__(self, nlp: Pipeline) -> None:
        self.model = nlp
        self.loss_names = list(nlp.pipe_names)

    def count(self, sub_batch: Batch) -> list[float]:
        """Labelled items per loss: counted on the host by `prepare` (reading them from device
        targets would stall the device once per component)."""
        return sub_batch.counts if sub_batch.counts is not None else self.count_targets(sub_batch)

    def count_targets(self, sub_batch: Batch) -> list[float]:
        return [float(self.model.components[name].count(sub_batch.targets[name])) for name in self.loss_names]

    def losses(self, sub_batch: Batch, step: int) -> dict[str, torch.Tensor]:
        with data_rank_generators(sub_batch.generators):  # dropout draws from the sub-batch's data rank
            return {name: loss_sum for name, (loss_sum, _) in self.model.losses(sub_batch, step).items()}

    def words(self, sub_batch: Batch) -> int:
        return sub_batch.num_words


class PipelineObjective(PipelineLosses):
    def __init__(self, config: Mapping[str, Any], run: RunSettings, env: WorkerEnv, nlp: Pipeline, console: Console | None = None) -> None:
        super().__init__(nlp)
        settings, corpus, evaluation = run.loop, run.corpus, run.evaluation or EvaluationSettings()
        self.config, self.settings, self.env = config, settings, env
        # Only rank 0 talks to the user; under Ray its console relays to the driver.
        self.console = (console or TerminalConsole()) if env.is_rank_zero else None
        self.device = torch.device(env.device)
        batcher = registry.resolve(run.batcher.node, run.batcher.path)

        def make_batches(rank: int, world_size: int) -> ResumableBatches:
            # One corpus: its DocStream; several: their per-rank streams interleaved (data/mixture.py).
            stream = open_training_stream(
                corpus.train_corpora(), temperature=corpus.temperature, rank=rank, world_size=world_size, seed=settings.seed,
                shuffle=corpus.shuffle, min_length=corpus.min_length, max_length=corpus.max_length,
                first_batch_words=run.batcher.first_batch_words, split_length=corpus.split_length,
            )
            return ResumableBatches(stream, batcher, shuffle_words=corpus.shuffle_words if corpus.shuffle else 0,
                                    split_length=corpus.split_length)

        self.batches = DataRanks(make_batches, env.rank, env.world_size, keep_global_batch=run.distributed.keep_global_batch)
        self.weights = score_weights(config, evaluation, nlp)
        self.dev_docs = _dev_docs(corpus.dev_sets(), env, evaluation.max_eval_docs)
        self.output_dir = Path(settings.output_dir)
        self.draw_curves = evaluation.curves
        self.tracker_specs = run.loggers
        self.logger: TrainingLogger | None = None
        self._loss_sums: torch.Tensor | None = None  # since the last evaluation, on the device
        self._words, self._t0 = 0, time.perf_counter()
        self._progress: Progress | None = None
        self._last: dict[str, Any] = {}

    # --- data ----------------------------------------------------------------------------------
    def prepare(self, docs: list[Doc], parts: int) -> list[Batch]:
        subs = []
        for generators, chunk in split_hosted(docs, parts, split_docs):
            host = self.model.featurize(chunk)
            sub = host.to(self.device)
            sub.counts = self.count_targets(host)  # host tensors: no device sync in the step
            sub.generators = generators
            subs.append(sub)
        return subs

    # --- the run -------------------------------------------------------------------------------
    def start(self, state: LoopState, *, resumed: bool, averages: ParameterAverages | None) -> None:
        zero = self.env.is_rank_zero
        if zero:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(json.dumps(self.config, indent=2))
        self.logger = TrainingLogger(self.loss_names, list(self.weights), self.output_dir / "metrics.jsonl", enabled=zero, console=self.console)
        if zero and self.tracker_specs:  # rank 0 alone: N replicas are one run in the tracker
            run_file = self.output_dir / RUN_FILE
            run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
            self.logger.trackers = TrackerFanout(start_trackers(self.tracker_specs, self.output_dir, self.config, self.logger.print, run_id),
                                                 self.logger.print)
        nlp = self.model
        self.logger.print(f"pipeline: {', '.join(nlp.pipe_names)} | device: {self.device} | replicas: {self.env.world_size} "
                          f"| parameters: {sum(p.numel() for p in nlp.parameters()):,}")
        if resumed:
            self.logger.print(f"resumed from the checkpoint of step {state.step}")
        nlp.set_dropout(self.settings.dropout)
        self._progress = progress_or_silent(self.console, self.settings.eval_frequency)

    def after_step(self, state: LoopState, result: StepResult, *, lr: float, data_time: float) -> None:
        kept = result.kept_loss_sums  # a skipped step's NaN stays out
        self._loss_sums = kept if self._loss_sums is None else self._loss_sums + kept
        self._words += result.words
        if self._progress is not None:
            self._progress.update(1, result.words)
        if state.step % self.settings.log_every == 0 and self.logger is not None:  # read by the loop on this step
            timing = {"data": data_time, "compute": result.time_compute, "reduce": result.time_reduce, "update": result.time_update}
            self.logger.write_json({"event": "step", "step": state.step, "epoch": state.epoch, "losses": result.losses, "lr": lr,
                                    "words": result.words, "grad_norm": result.grad_norm, "skipped": result.skipped, "time": timing})

    def is_save_point(self, state: LoopState, point: SavePoint, batch_index: int) -> bool:
        return state.step % self.settings.eval_frequency == 0

    def evaluate(self, state: LoopState, averages: ParameterAverages | None, reducer: Reducer) -> float | None:
        if self._progress is not None:
            self._progress.close()
        elapsed = time.perf_counter() - self._t0
        scores = evaluate_on(self.model, self.dev_docs, averages, reducer)
        score = combine_score(scores, self.weights)
        best = state.best_score is None or score > state.best_score
        loss_sums = self._loss_sums.tolist() if self._loss_sums is not None else [0.0] * len(self.loss_names)
        info = {"epoch": state.epoch, "step": state.step, "losses": dict(zip(self.loss_names, loss_sums)),
                "scores": {k: v for k, v in scores.items() if k in self.weights}, "all_scores": scores, "score": score,
                "words_per_second": self._words / max(elapsed, 1e-9)}
        assert self.logger is not None
        self.logger.log_eval(info)
        if self.env.is_rank_zero and self.draw_curves:  # beside metrics.jsonl, redrawn from it (training/curves.py)
            redraw_run_curves(self.output_dir)
        self._last = {"step": state.step, "score": score, "scores": scores, "best": best}
        self._loss_sums = None
        self._words, self._t0 = 0, time.perf_counter()
        self._progress = progress_or_silent(self.console, self.settings.eval_frequency)
        return score

    def save(self, state: LoopState, point: SavePoint, averages: ParameterAverages | None) -> None:
        if not self.env.is_rank_zero:
            return
        meta = {k: self._last[k] for k in ("step", "score", "scores")}
        save_pipeline(self.model, averages, self.output_dir / "model-last", meta)
        if self._last.get("best"):
            save_pipeline(self.model, averages, self.output_dir / "model-best", meta)

    def finish(self, state: LoopState, stop_reason: str) -> dict[str, Any]:
        if self._progress is not None:
            self._progress.close()
        assert self.logger is not None
        best = 100 * (state.best_score or 0)
        skipped = f"; {state.skipped_steps} non-finite steps skipped" if state.skipped_steps else ""
        self.logger.print(f"stopped after {state.step} steps ({stop_reason}); best score {best:.2f} at step {state.best_step}{skipped}; "
                          f"model-best/ and model-last/ saved in {self.output_dir}")
        self.logger.close(best_model=self.output_dir / "model-best")
        return {"step": state.step, "epoch": state.epoch, "best_score": state.best_score, "best_step": state.best_step,
                "output_dir": str(self.output_dir), "stop_reason": stop_reason, "skipped_steps": state.skipped_steps}


def split_docs(docs: list[Doc], parts: int) -> list[list[Doc]]:
    """accumulate_gradient sub-batches (a rank with no docs gets none)."""
    if not docs:
        return []
    if parts <= 1 or len(docs) < 2:
        return [docs]
    size = -(-len(docs) // parts)
    return [docs[i : i + size] for i in range(0, len(docs), size)]


def _dev_docs(dev_sets: Sequence[tuple[str | None, str, str]], env: WorkerEnv, limit: int) -> list[Doc]:
    """The dev docs of this rank; with several dev sets each doc is tagged with its corpus's
    name (scored per corpus and combined) and `limit` applies to each set."""
    docs: list[Doc] = []
    for name, path, label in dev_sets:
        these = list(read_docs(str(path), label=label))
        if limit:
            these = these[:limit]
        if name is not None:
            for doc in these:
                doc.user_data[CORPUS_KEY] = name
        docs.extend(these)
    # Each rank scores its own share; the counts are merged (see evaluate_on).
    return docs[env.rank :: env.world_size]


def evaluate_on(nlp: Pipeline, docs: Sequence[Doc], averages: ParameterAverages | None, reducer: Reducer) -> dict[str, Any]:
    """spaCy's scores over every dev doc (merged over ranks), and, when the docs come from several
    named dev sets, each set's scores as `<name>/<score>` beside them."""
    if averages is not None:
        averages.swap()
    try:
        preds = list(nlp.pipe((nlp.eval_input(d) for d in docs), batch_size=256))
        groups: dict[str, tuple[list[Doc], list[Doc]]] = {}
        for gold, pred in zip(docs, preds):
            golds, predicted = groups.setdefault(str(gold.user_data.get(CORPUS_KEY, "")), ([], []))
            golds.append(gold)
            predicted.append(pred)
        states: dict[str, Any] = {}
        for name, (golds, predicted) in groups.items():
            scorer = nlp.scorer()
            scorer.update(golds, predicted)
            states[name] = scorer.state()
        per_rank = reducer.gather_objects(states)
        names = sorted({name for rank_states in per_rank for name in rank_states})
        by_name = {name: [s[name] for s in per_rank if name in s] for name in names}
        every = [state for states_ in by_name.values() for state in states_]
        scores = (Scorer.merge(every) if every else nlp.scorer()).scores()
        if names != [""]:
            for name in names:
                if name:
                    # only what this corpus annotates (no ewt/cats_score: None)
                    scores.update({f"{name}/{key}": value for key, value in Scorer.merge(by_name[name]).scores().items()
                                   if value is not None})
        return scores
    finally:
        if averages is not None:
            averages.swap()
        nlp.train()


def save_pipeline(nlp: Pipeline, averages: ParameterAverages | None, path: Path, meta: Mapping[str, Any]) -> None:
    """model-best/ and model-last/ hold the averaged weights when averages are kept (thinc's use_params)."""
    if averages is not None:
        averages.swap()
    try:
        nlp.to_disk(path, meta=meta)
    finally:
        if averages is not None:
            averages.swap()


def train_step(
    nlp: Any,
    sub_batches: Sequence[Any],
    *,
    step: int,
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    reducer: Reducer | None = None,
    nonfinite: str = "error",
) -> StepResult:
    """One step of a pipeline on featurized batches (`nlp.featurize(docs)`)."""
    return optimizer_step(PipelineLosses(nlp), sub_batches, step=step, optimizer=optimizer, grad_clip=grad_clip,
                          reducer=reducer, nonfinite=nonfinite)
