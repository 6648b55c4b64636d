"""The pretraining loop: raw text -> masked batches -> objective loss -> weighted all-reduce ->
committed checkpoints + spaCy's `model{epoch}.bin` / `model{epoch}.temp.bin` / `model-last.bin`.

`run_pretrain_worker(config, env)` is the one entry that a single process and every Ray replica
call, structured as `training.loop.run_worker`: the same seeding, device, `make_reducer(model)`,
coordinator restore/checkpoint and `ResumableBatches`.

Checkpoints (DESIGN.md decision 7): at each save point (the end of an epoch, every `n_save_every`
batches of an epoch) all ranks first commit the whole state through the coordinator (a collective:
weights, objective head, optimizer moments, averages, per-rank cursor and RNG, the loop counters
including the epoch); only then does rank 0 write the `.bin` (tok2vec weights as safetensors
bytes, averaged weights when `use_averages`, as spaCy's `use_params(optimizer.averages)`) and
append a line to `log.jsonl`. A rank-0 crash between the two is repaired on resume: the committed
state names the file it was followed by, and a missing one is rewritten from the restored weights.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import nn

from .. import registry
from ..data.doc import Doc
from ..errors import ConfigError
from ..models.tok2vec import features_to
from ..training.batches import ResumableBatches
from ..training.coordinator import FileCoordinator
from ..training.env import WorkerEnv
from ..training.optim import ParameterAverages, build_optimizer, set_learn_rate
from ..training.step import LocalReducer, Reducer
from .objectives import mask_docs
from .text_stream import open_text_stream

log = logging.getLogger(__name__)

ENCODER_NAMES = ("encoder", "tok2vec")  # "tok2vec" is spaCy's default component name


# --- configuration -------------------------------------------------------------------------


def pretrain_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    cfg = config.get("pretrain")
    if not isinstance(cfg, Mapping) or not cfg:
        raise ConfigError("pretrain", "no pretrain section in the config", "add the group: +pretrain=characters (or pretrain=vectors)")
    return dict(cfg)


def objective_config(pcfg: Mapping[str, Any]) -> dict[str, Any]:
    """`pretrain.objective` names one of `pretrain.objectives` (or is itself a {_use_: ...} node)."""
    choice = pcfg.get("objective")
    if registry.is_reference(choice):
        return dict(choice)
    options = dict(pcfg.get("objectives") or {})
    if not isinstance(choice, str) or choice not in options:
        raise ConfigError("pretrain.objective", f"unknown objective {choice!r}", f"choose one of {sorted(options)} (pretrain.objective=NAME)")
    node = options[choice]
    if not registry.is_reference(node):
        raise ConfigError(f"pretrain.objectives.{choice}", "must be a registered objective {_use_: ...}", "e.g. _use_: distnlp.PretrainCharacters.v1")
    return dict(node)


def _target_config(config: Mapping[str, Any], component: str) -> tuple[Any, str]:
    """The config node of the embedding module the weights belong to, and its dotted path."""
    comps = config.get("components") or {}
    if component in ENCODER_NAMES:
        enc = config.get("encoder")
        if not isinstance(enc, Mapping) or "model" not in enc:
            raise ConfigError("encoder", "pretrain.component is the shared encoder but no encoder is configured", "pick one: encoder=tok2vec")
        return enc["model"], "encoder.model"
    if component not in comps:
        raise ConfigError("pretrain.component", f"unknown component {component!r}", f"choose 'encoder' or one of {sorted(comps)}")
    settings = comps[component]
    if settings.get("listen"):
        # spaCy: a listener's weights are the upstream tok2vec's
        return _target_config(config, "encoder")
    if not settings.get("embed"):
        raise ConfigError(f"components.{component}.embed", "the component has no own embedding", "pretrain the shared encoder: pretrain.component=encoder")
    return settings["embed"], f"components.{component}.embed"


def select_layer(module: nn.Module, layer: str, path: str) -> nn.Module:
    """`layer` = a sub-module path ("" = the whole module), e.g. "embed" of a Tok2Vec."""
    if not layer:
        return module
    try:
        return module.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in module.named_modules() if n and n.count(".") < 2]
        raise ConfigError("pretrain.layer", f"{path} has no layer {layer!r}", f"use '' (the whole module) or one of {names[:12]}") from None


def build_tok2vec(config: Mapping[str, Any], vectors: Any = None) -> tuple[nn.Module, nn.Module, str]:
    """(the module built from the config, the layer being pretrained, its description)."""
    pcfg = pretrain_settings(config)
    component = str(pcfg.get("component") or "encoder")
    layer = str(pcfg.get("layer") or "")
    node, path = _target_config(config, component)
    module = registry.resolve(node, path)
    for sub in module.modules():
        if getattr(sub, "include_static_vectors", False) and hasattr(sub, "attach_vectors"):
            if vectors is None:
                raise ConfigError("initialize.vectors", "include_static_vectors is true but no vectors table is given", "create one with `distnlp init vectors` and set initialize.vectors=DIR")
            sub.attach_vectors(vectors)
    target = select_layer(module, layer, path)
    if not (callable(getattr(target, "featurize", None)) and hasattr(target, "width")):
        raise ConfigError("pretrain.layer", f"{path}{'.' + layer if layer else ''} ({type(target).__name__}) is not an embedding layer with featurize(docs), forward and width", "pretrain the whole module: pretrain.layer=''")
    return module, target, path + (f".{layer}" if layer else "")


def _load_vectors_dir(setting: Any, where: str) -> Any:
    if not setting:
        return None
    if isinstance(setting, Mapping):
        return registry.resolve(setting, where)
    if not Path(str(setting)).exists():
        raise ConfigError(where, f"directory not found: {setting}", "create it with `distnlp init vectors`")
    from ..vectors.table import Vectors

    return Vectors.from_disk(str(setting))


class PretrainModel(nn.Module):
    """The layer being pretrained plus the objective head: what the optimizer and checkpoints see."""

    def __init__(self, tok2vec: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.tok2vec = tok2vec
        self.objective = objective


def build_pretrain_model(config: Mapping[str, Any]) -> tuple[PretrainModel, str]:
    pcfg = pretrain_settings(config)
    init_vectors = _load_vectors_dir((config.get("initialize") or {}).get("vectors"), "initialize.vectors")
    _, target, where = build_tok2vec(config, init_vectors)
    objective = registry.resolve(objective_config(pcfg), "pretrain.objective")
    obj_vectors = None
    if getattr(objective, "needs_vectors", False):
        setting = pcfg.get("vectors")
        same = setting and setting == (config.get("initialize") or {}).get("vectors")
        obj_vectors = init_vectors if same else _load_vectors_dir(setting, "pretrain.vectors")
    objective.initialize(int(target.width), obj_vectors)
    return PretrainModel(target, objective), where


# --- one step ------------------------------------------------------------------------------


@dataclass
class PretrainStepResult:
    loss_sum: float  # global: summed over ranks
    count: int  # global tokens that carried loss
    words: int  # global words read
    grad_norm: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)


def pretrain_step(
    model: PretrainModel,
    docs: Sequence[Doc],
    *,
    optimizer: torch.optim.Optimizer,
    reducer: Reducer,
    device: torch.device,
    grad_clip: float = 0.0,
    mask_prob: float = 0.15,
    dropout: float = 0.0,
) -> PretrainStepResult:
    """Mask, predict, token-weighted loss divided by the GLOBAL count, reduce, clip, update."""
    docs = [d for d in docs if len(d.words)]
    params = [p for p in model.parameters() if p.requires_grad]
    words = sum(len(d.words) for d in docs)
    if docs:
        masked, selected = mask_docs(docs, mask_prob=mask_prob)
        sel = torch.from_numpy(np.flatnonzero(selected))
        targets = model.objective.targets(docs)[sel]
        count = model.objective.count(targets)
    else:  # a rank without data this step contributes zero weight (DESIGN.md decision 4)
        count = 0
    global_count = reducer.sum_counts(torch.tensor([float(count)], dtype=torch.float64))
    denom = max(1.0, float(global_count[0]))
    optimizer.zero_grad(set_to_none=False)
    mark_final = getattr(reducer, "final_backward", None)
    if mark_final is not None:
        mark_final(True)
    if docs:
        feats = features_to(model.tok2vec.featurize(masked), device)
        hidden = model.tok2vec(feats)
        if dropout > 0 and model.training:
            hidden = F.dropout(hidden, p=dropout)
        loss_sum, _ = model.objective.loss(hidden[sel.to(device)], targets.to(device))
        total = loss_sum / denom
        local_loss = float(loss_sum.detach())
    else:
        total = sum((p.sum() * 0.0 for p in params), torch.zeros((), device=device))
        local_loss = 0.0
    total.backward()
    reducer.sum_grads(params)
    grad_norm = 0.0
    if grad_clip and grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    optimizer.step()
    sums = reducer.sum_counts(torch.tensor([local_loss, float(words)], dtype=torch.float64))
    return PretrainStepResult(float(sums[0]), int(global_count[0]), int(sums[1]), grad_norm)


# --- saving --------------------------------------------------------------------------------


def tok2vec_bytes(model: PretrainModel, averages: ParameterAverages | None) -> bytes:
    """The pretrained layer's weights as safetensors bytes (averaged weights when kept)."""
    if averages is not None:
        averages.swap()
    try:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.tok2vec.state_dict().items()}
    finally:
        if averages is not None:
            averages.swap()
    return save(tensors, metadata={"format": "distnlp.tok2vec", "version": "1"})


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _bin_name(epoch: int, temp: bool) -> str:
    return f"model{epoch}.temp.bin" if temp else f"model{epoch}.bin"


# --- the worker ----------------------------------------------------------------------------


def _seed(seed: int) -> None:
    from ..training.loop import seed_everything

    seed_everything(seed)


def run_pretrain_worker(
    config: Mapping[str, Any],
    env: WorkerEnv | None = None,
    *,
    make_reducer: Callable[[nn.Module], Reducer] | None = None,
    coordinator: Any = None,
) -> dict[str, Any]:
    """Pretrain the configured layer on `corpus.raw_text`; returns a summary.

    `make_reducer(model)` gives the collectives of a distributed run (identity when None);
    `coordinator` restores and commits the whole state (a FileCoordinator under
    `pretrain.output_dir/checkpoints` when None).
    """
    env = env or WorkerEnv()
    pcfg = pretrain_settings(config)
    registry.import_code(config.get("code"))
    seed = int(pcfg.get("seed", config.get("seed", 0)) or 0)
    threads = int((config.get("distributed") or {}).get("num_threads", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    device = torch.device(env.device)

    # Every rank builds the same initial weights from the same seed; masks and dropout differ.
    _seed(seed)
    model, where = build_pretrain_model(config)
    _seed(seed + 1000 * env.rank)
    model.to(device)
    reducer = make_reducer(model) if make_reducer is not None else LocalReducer()
    opt_cfg = dict(pcfg["optimizer"])
    optimizer, learn_rate = build_optimizer(model, opt_cfg)
    averages = ParameterAverages(model) if opt_cfg.get("use_averages") else None

    raw = (config.get("corpus") or {}).get("raw_text")
    if not raw:
        raise ConfigError("corpus.raw_text", "not set", 'set corpus.raw_text=FILE (JSONL {"text": ...}, plain text lines, or a converted corpus directory)')
    stream = open_text_stream(
        str(raw), rank=env.rank, world_size=env.world_size, seed=seed,
        shuffle=bool((config.get("corpus") or {}).get("shuffle", True)), infinite=True,
        min_length=int(pcfg.get("min_length", 0) or 0), max_length=int(pcfg.get("max_length", 0) or 0),
    )
    batcher = registry.resolve(pcfg["batcher"], "pretrain.batcher")
    batches = ResumableBatches(stream, batcher)

    output_dir = Path(str(pcfg.get("output_dir") or "pretrain"))
    keep = int(pcfg.get("checkpoints_to_keep", 3) or 0)
    if coordinator is None and keep > 0:
        coordinator = FileCoordinator(output_dir / "checkpoints", keep=keep, resume=bool(pcfg.get("resume", False)))
    state: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "nr_word": 0, "loss": 0.0, "epoch_loss": 0.0, "last_save": None}
    resumed = False
    if coordinator is not None:
        restored = coordinator.restore(nlp=model, optimizer=optimizer, averages=averages, stream=batches)
        if restored:
            state.update({k: restored[k] for k in state if k in restored})
            resumed = True
    if env.is_rank_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(config, indent=2))
        if resumed and state.get("last_save") and not (output_dir / state["last_save"]).exists():
            _write_atomic(output_dir / state["last_save"], tok2vec_bytes(model, averages))  # crashed before writing it
    metrics = open(output_dir / "metrics.jsonl", "a", encoding="utf8") if env.is_rank_zero else None

    def say(text: str) -> None:
        if env.is_rank_zero:
            print(text, flush=True)

    n_params = sum(p.numel() for p in model.tok2vec.parameters())
    say(f"pretraining {where} ({n_params:,} parameters) with {type(model.objective).__name__} | device: {device} | replicas: {env.world_size}")
    if resumed:
        say(f"resumed from the checkpoint of step {state['step']} (epoch {state['epoch']})")

    max_steps = int(pcfg.get("max_steps", 0) or 0)
    max_epochs = int(pcfg.get("max_epochs", 0) or 0)
    if not max_steps and not max_epochs:
        raise ConfigError("pretrain.max_epochs", "both max_epochs and max_steps are 0: pretraining would never stop", "set pretrain.max_epochs=N or pretrain.max_steps=N")
    n_save_every = int(pcfg.get("n_save_every") or 0)
    n_save_epoch = int(pcfg.get("n_save_epoch") or 0)
    grad_clip = float(opt_cfg.get("grad_clip", 0.0) or 0.0)
    dropout = float(pcfg.get("dropout") or 0.0)
    mask_prob = float(pcfg.get("mask_prob", 0.15))
    log_every = max(1, int(pcfg.get("log_every", 1) or 1))
    fail_at = (config.get("distributed") or {}).get("fail_at_step")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = dropout
    model.train()

    def commit_and_save(filename: str | None, log_epoch: int | None = None, log_epoch_loss: float | None = None) -> None:
        """All ranks commit the whole state (the agreement), then rank 0 writes the .bin."""
        state["last_save"] = filename
        if coordinator is not None:
            coordinator.checkpoint(step=step, nlp=model, optimizer=optimizer, averages=averages, stream=batches,
                                   state=dict(state), metrics={"step": step, "epoch": state["epoch"], "loss": state["loss"]})
            batches.restart()  # as training: an uninterrupted run reads what a resumed one reads
        if env.is_rank_zero and filename:
            _write_atomic(output_dir / filename, tok2vec_bytes(model, averages))
            with open(output_dir / "log.jsonl", "a", encoding="utf8") as fh:
                fh.write(json.dumps({"nr_word": state["nr_word"], "loss": state["loss"], "epoch_loss": state["epoch_loss"] if log_epoch_loss is None else log_epoch_loss,
                                     "epoch": state["epoch"] if log_epoch is None else log_epoch, "step": step, "file": filename}) + "\n")

    step = int(state["step"])
    exhausted = False
    stop_reason = "max_steps"
    while True:
        if max_steps and step >= max_steps:
            break
        if max_epochs and int(state["epoch"]) >= max_epochs:
            stop_reason = "max_epochs"
            break
        if fail_at and step == int(fail_at) and not resumed and env.rank == env.world_size - 1:
            os._exit(1)  # testing aid (distributed.fail_at_step): this replica dies as a crashed worker would
        try:
            docs = [] if exhausted else next(batches)
        except StopIteration:
            exhausted, docs = True, []
        set_learn_rate(optimizer, learn_rate(step))
        result = pretrain_step(model, docs, optimizer=optimizer, reducer=reducer, device=device,
                               grad_clip=grad_clip, mask_prob=mask_prob, dropout=dropout)
        if averages is not None:
            averages.update()
        step += 1
        state["step"] = step
        state["nr_word"] += result.words
        state["loss"] += result.loss_sum
        state["epoch_loss"] += result.loss_sum
        if metrics is not None and step % log_every == 0:
            metrics.write(json.dumps({"event": "step", "step": step, "epoch": state["epoch"], "loss": result.loss,
                                      "count": result.count, "words": result.words, "grad_norm": result.grad_norm}) + "\n")
            metrics.flush()
        batch_in_epoch = int(state["batch_in_epoch"])
        state["batch_in_epoch"] = batch_in_epoch + 1
        # The epoch ends when every rank has read past it (a collective: all ranks agree).
        passed = exhausted or batches.epoch > int(state["epoch"])
        agree = getattr(reducer, "agree_all", None)
        epoch_done = agree(passed) if agree is not None else passed
        if epoch_done:
            epoch = int(state["epoch"])
            last_epoch = bool(max_epochs) and epoch + 1 >= max_epochs
            write = not n_save_epoch or epoch % n_save_epoch == 0 or last_epoch
            finished_loss = float(state["epoch_loss"])
            say(f"epoch {epoch}: step {step}, {state['nr_word']:,} words, epoch loss {finished_loss:.2f}")
            # The committed state is already in the next epoch, so a resume starts it; the log
            # line carries the finished epoch's number and loss (spaCy's meaning).
            state.update(epoch=epoch + 1, batch_in_epoch=0, epoch_loss=0.0)
            commit_and_save(_bin_name(epoch, temp=False) if write else None, log_epoch=epoch, log_epoch_loss=finished_loss)
        elif n_save_every and batch_in_epoch % n_save_every == 0:
            # spaCy: `batch_id % n_save_every == 0` (so also after the first batch of an epoch)
            commit_and_save(_bin_name(int(state["epoch"]), temp=True))
    if max_epochs and int(state["epoch"]) >= max_epochs:
        stop_reason = "max_epochs"
    commit_and_save("model-last.bin")
    if metrics is not None:
        metrics.close()
    say(f"stopped after {step} steps ({stop_reason}); {state['nr_word']:,} words; saved to {output_dir}")
    close = getattr(reducer, "close", None)
    if close is not None and make_reducer is not None:
        close()
    return {"step": step, "epoch": int(state["epoch"]), "loss": state["loss"], "nr_word": state["nr_word"],
            "output_dir": str(output_dir), "stop_reason": stop_reason}

