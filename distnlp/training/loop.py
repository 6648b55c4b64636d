"""The training loop, top to bottom: corpus stream -> batches -> steps -> evaluate -> save.

`run_worker(config, env)` is the one entry that single-process training, the local launcher
and every Ray replica call (DESIGN.md, layers). It is plain torch: collectives come in only
through the `reducer` and `coordinator` arguments.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import registry
from ..data.doc import Doc
from ..data.stream import DocStream, read_docs
from ..errors import ConfigError
from ..pipeline.pipeline import Pipeline
from ..scoring import combine_score
from .batches import ResumableBatches
from .coordinator import FileCoordinator
from .env import WorkerEnv
from .labels import pipeline_labels
from .logger import TrainingLogger
from .optim import ParameterAverages, build_optimizer, set_learn_rate
from .step import LocalReducer, Reducer, train_step

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_vectors(config: Mapping[str, Any]) -> Any:
    """initialize.vectors: a vectors directory, or a registered vectors object {_use_: ...}."""
    setting = (config.get("initialize") or {}).get("vectors")
    if not setting:
        return None
    if isinstance(setting, Mapping):
        return registry.resolve(setting, "initialize.vectors")
    if not Path(setting).exists():
        raise ConfigError("initialize.vectors", f"directory not found: {setting}", "create it with `distnlp init vectors`")
    from ..vectors.table import Vectors

    return Vectors.from_disk(setting)


def build_pipeline(config: Mapping[str, Any]) -> Pipeline:
    """A fresh pipeline for the config, labels from the training corpus."""
    registry.import_code(config.get("code"))
    train_path = _corpus_path(config, "train")
    labels = pipeline_labels(config, train_path)
    nlp = Pipeline(config, labels, load_vectors(config))
    if not nlp.pipe_names:
        raise ConfigError("nlp.pipeline", "no component has labels in the training corpus", f"check corpus.train ({train_path}) and the components' columns")
    init_tok2vec = (config.get("initialize") or {}).get("init_tok2vec")
    if init_tok2vec:
        from ..pretrain.weights import load_pretrained_tok2vec

        load_pretrained_tok2vec(nlp, init_tok2vec, config)
    return nlp


def score_weights(config: Mapping[str, Any], nlp: Pipeline) -> dict[str, float | None]:
    explicit = (config.get("training") or {}).get("score_weights")
    if explicit:
        return dict(explicit)
    weights: dict[str, float | None] = {}
    for name in nlp.pipe_names:
        weights.update(config["components"][name].get("score_weights") or {})
    return weights


def _corpus_path(config: Mapping[str, Any], split: str) -> str:
    path = (config.get("corpus") or {}).get(split)
    if not path:
        raise ConfigError(f"corpus.{split}", "not set", f"set corpus.{split}=DIR (a directory written by distnlp convert)")
    return str(path)


def run_worker(
    config: Mapping[str, Any],
    env: WorkerEnv | None = None,
    *,
    make_reducer: Callable[[Pipeline], Reducer] | None = None,
    coordinator: Any = None,
) -> dict[str, Any]:
    """Train the pipeline the config describes; returns a summary (best score, paths, steps).

    `make_reducer(nlp)` gives the collectives of a distributed run (identity when None);
    `coordinator` restores and commits checkpoints (a FileCoordinator under output_dir when None).
    """
    env = env or WorkerEnv()
    tcfg = config["training"]
    seed = int(config.get("seed", 0))
    seed_everything(seed + env.rank)
    threads = int((config.get("distributed") or {}).get("num_threads", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    device = torch.device(env.device)

    # Every rank builds the same initial weights from the same seed.
    seed_everything(seed)
    nlp = build_pipeline(config)
    seed_everything(seed + 1000 * env.rank)
    nlp.to(device)
    reducer = make_reducer(nlp) if make_reducer is not None else LocalReducer()
    optimizer, learn_rate = build_optimizer(nlp, tcfg["optimizer"])
    opt_cfg = tcfg["optimizer"]
    averages = ParameterAverages(nlp) if opt_cfg.get("use_averages") else None
    weights = score_weights(config, nlp)

    corpus = config["corpus"]
    stream = DocStream(
        _corpus_path(config, "train"),
        rank=env.rank,
        world_size=env.world_size,
        seed=seed,
        shuffle=bool(corpus.get("shuffle", True)),
        infinite=True,
        min_length=int(corpus.get("min_length", 0) or 0),
        max_length=int(corpus.get("max_length", 0) or 0),
    )
    batcher = registry.resolve(tcfg["batcher"], "training.batcher")
    batches = ResumableBatches(stream, batcher)
    dev_docs = _dev_docs(config, env)

    output_dir = Path(tcfg["output_dir"])
    state: dict[str, Any] = {"step": 0, "best_score": None, "best_step": 0}
    if coordinator is None and int(tcfg.get("checkpoints_to_keep", 0) or 0) > 0:
        coordinator = FileCoordinator(output_dir / "checkpoints", keep=int(tcfg["checkpoints_to_keep"]), resume=bool(tcfg.get("resume", False)))
    resumed = False
    if coordinator is not None:
        restored = coordinator.restore(nlp=nlp, optimizer=optimizer, averages=averages, stream=batches)
        if restored:
            state.update({k: restored[k] for k in ("step", "best_score", "best_step") if k in restored})
            resumed = True
    if env.is_rank_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(config, indent=2))
    logger = TrainingLogger(nlp.pipe_names, [k for k in weights], output_dir / "metrics.jsonl", enabled=env.is_rank_zero)
    logger.print(f"pipeline: {', '.join(nlp.pipe_names)} | device: {device} | replicas: {env.world_size} | parameters: {sum(p.numel() for p in nlp.parameters()):,}")
    if resumed:
        logger.print(f"resumed from the checkpoint of step {state['step']}")
    fail_at = (config.get("distributed") or {}).get("fail_at_step")

    max_steps = int(tcfg.get("max_steps", 0) or 0)
    max_epochs = int(tcfg.get("max_epochs", 0) or 0)
    eval_frequency = max(1, int(tcfg.get("eval_frequency", 200)))
    patience = int(tcfg.get("patience", 0) or 0)
    accumulate = max(1, int(tcfg.get("accumulate_gradient", 1)))
    grad_clip = float(opt_cfg.get("grad_clip", 0.0) or 0.0)
    log_every = max(1, int(tcfg.get("log_every", 50)))
    nlp.set_dropout(tcfg.get("dropout"))
    nlp.train()

    loss_totals = {name: 0.0 for name in nlp.pipe_names}
    words_since_eval = 0
    t_since_eval = time.perf_counter()
    step = int(state["step"])
    progress = _progress(env, eval_frequency)
    stop_reason = "max_steps"
    while True:
        if max_steps and step >= max_steps:
            break
        if max_epochs and _all_agree(reducer, batches.epoch >= max_epochs):
            stop_reason = "max_epochs"
            break
        if fail_at and step == int(fail_at) and not resumed and env.rank == env.world_size - 1:
            # Testing aid (distributed.fail_at_step): this replica dies as a crashed worker would.
            os._exit(1)
        t_batch = time.perf_counter()
        docs = next(batches)
        subs = [nlp.featurize(chunk).to(device) for chunk in _split(docs, accumulate)]
        t_featurized = time.perf_counter()
        set_learn_rate(optimizer, learn_rate(step))
        result = train_step(nlp, subs, step=step, optimizer=optimizer, grad_clip=grad_clip, reducer=reducer)
        if averages is not None:
            averages.update()
        step += 1
        words_since_eval += result.words
        for name, value in result.losses.items():
            loss_totals[name] += value
        if progress is not None:
            progress.update(1)
        if step % log_every == 0:
            timing = {"data": t_featurized - t_batch, "compute": result.time_compute, "reduce": result.time_reduce, "update": result.time_update}
            logger.write_json({"event": "step", "step": step, "epoch": batches.epoch, "losses": result.losses, "lr": learn_rate(step - 1), "words": result.words, "grad_norm": result.grad_norm, "time": timing})
        last = bool(max_steps) and step >= max_steps
        if step % eval_frequency == 0 or last:
            if progress is not None:
                progress.close()
            elapsed = time.perf_counter() - t_since_eval
            words_total = _sum_words(reducer, words_since_eval)
            scores = _evaluate(nlp, dev_docs, averages, reducer, env)
            score = combine_score(scores, weights)
            is_best = state["best_score"] is None or score > state["best_score"]
            if is_best:
                state["best_score"], state["best_step"] = score, step
            info = {
                "epoch": batches.epoch,
                "step": step,
                "losses": dict(loss_totals),
                "scores": {k: v for k, v in scores.items() if k in weights},
                "all_scores": scores,
                "score": score,
                "words_per_second": words_total / max(elapsed, 1e-9),
            }
            logger.log_eval(info)
            if env.is_rank_zero:
                _save(nlp, averages, output_dir / "model-last", {"step": step, "score": score, "scores": scores})
                if is_best:
                    _save(nlp, averages, output_dir / "model-best", {"step": step, "score": score, "scores": scores})
            state["step"] = step
            if coordinator is not None:
                coordinator.checkpoint(step=step, nlp=nlp, optimizer=optimizer, averages=averages, stream=batches, state=state, metrics={"step": step, "score": score, "epoch": batches.epoch})
                batches.restart()
            loss_totals = {name: 0.0 for name in nlp.pipe_names}
            words_since_eval = 0
            t_since_eval = time.perf_counter()
            progress = _progress(env, eval_frequency)
            if patience and step - int(state["best_step"]) >= patience:
                stop_reason = "patience"
                break
    if progress is not None:
        progress.close()
    logger.print(f"stopped after {step} steps ({stop_reason}); best score {100 * (state['best_score'] or 0):.2f} at step {state['best_step']}; saved to {output_dir}")
    logger.close()
    return {"step": step, "best_score": state["best_score"], "best_step": state["best_step"], "output_dir": str(output_dir), "stop_reason": stop_reason}


def _split(docs: list[Doc], parts: int) -> list[list[Doc]]:
    if parts <= 1 or len(docs) < 2:
        return [docs]
    size = -(-len(docs) // parts)
    return [docs[i : i + size] for i in range(0, len(docs), size)]


def _dev_docs(config: Mapping[str, Any], env: WorkerEnv) -> list[Doc]:
    path = (config.get("corpus") or {}).get("dev")
    if not path:
        return []
    docs = list(read_docs(str(path)))
    limit = int(config["training"].get("max_eval_docs", 0) or 0)
    if limit:
        docs = docs[:limit]
    # Each rank scores its own share; the counts are merged (see _evaluate).
    return docs[env.rank :: env.world_size]


def _evaluate(nlp: Pipeline, docs: list[Doc], averages: ParameterAverages | None, reducer: Reducer, env: WorkerEnv) -> dict[str, Any]:
    from ..scoring import Scorer

    if averages is not None:
        averages.swap()
    try:
        preds = list(nlp.pipe((d.copy_unannotated() for d in docs), batch_size=256))
        scorer = nlp.scorer()
        scorer.update(docs, preds)
        gather = getattr(reducer, "gather_objects", None)
        if gather is not None:
            scorer = Scorer.merge(gather(scorer.state()))
        return scorer.scores()
    finally:
        if averages is not None:
            averages.swap()
        nlp.train()


def _save(nlp: Pipeline, averages: ParameterAverages | None, path: Path, meta: Mapping[str, Any]) -> None:
    if averages is not None:
        averages.swap()
    try:
        nlp.to_disk(path, meta=meta)
    finally:
        if averages is not None:
            averages.swap()


def _all_agree(reducer: Reducer, flag: bool) -> bool:
    """Ranks stop together: True only when every rank says so (no collective can hang)."""
    agree = getattr(reducer, "agree_all", None)
    return agree(flag) if agree is not None else flag


def _sum_words(reducer: Reducer, words: int) -> float:
    counts = reducer.sum_counts(torch.tensor([float(words)], dtype=torch.float64))
    return float(counts[0])


def _progress(env: WorkerEnv, total: int) -> Any:
    if not env.is_rank_zero:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, leave=False, desc="train", unit="step", disable=None)
