"""Pretraining as the loop's objective: raw text -> masked batches -> the objective head's loss,
and spaCy's files: `model{epoch}.bin`, `model{epoch}.temp.bin`, `model-last.bin`, `log.jsonl`.

Save points (spaCy's meaning): the end of an epoch (`model{epoch}.bin`, every `n_save_epoch`
epochs and the last), every `n_save_every` batches of an epoch (`model{epoch}.temp.bin`, also
after the first batch, as spaCy's `batch_id % n_save_every == 0`), and the last step
(`model-last.bin`). At each, all ranks first commit the whole state (the engine), then rank 0
writes the `.bin` (the layer's weights as safetensors bytes; the averages when kept) and a line
of `log.jsonl`. The committed state names the files it is followed by, so a crash between the
two is repaired on resume by rewriting a missing one from the restored weights.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..config.settings import RunSettings
from ..data.doc import Doc
from ..errors import ConfigError
from ..pipeline.device import to_device
from ..progress import progress_bar
from ..training.batches import ResumableBatches
from ..training.console import Console, TerminalConsole
from ..training.engine import LoopState, SavePoint
from ..training.env import WorkerEnv
from ..training.optim import ParameterAverages
from ..training.pipeline_objective import split_docs
from ..training.step import Reducer, StepResult
from ..training.virtual_ranks import DataRanks
from .loop import bin_name, build_pretrain_model, pretrain_section, tok2vec_bytes, write_atomic
from .objectives import mask_docs
from .text_stream import open_text_stream

LOSS = "pretrain"


@dataclass
class MaskedBatch:
    features: Any
    selected: torch.Tensor  # indices of the masked tokens that carry loss
    targets: torch.Tensor
    words: int
    count: int  # tokens that carry loss, counted on the host before the targets go to the device


class PretrainObjective:
    loss_names = [LOSS]

    def __init__(self, config: Mapping[str, Any], run: RunSettings, env: WorkerEnv, console: Console | None = None) -> None:
        pcfg = pretrain_section(config)
        settings, corpus = run.loop, run.corpus
        self.config, self.settings, self.env = config, settings, env
        self.console = (console or TerminalConsole()) if env.is_rank_zero else None  # under Ray: relayed to the driver
        self.device = torch.device(env.device)
        self.model, self.where = build_pretrain_model(config)
        self.dropout = float(settings.dropout or 0.0)
        self.mask_prob = float(pcfg.get("mask_prob", 0.15))
        text = corpus.required("raw_text")
        batcher = registry.resolve(run.batcher.node, run.batcher.path)
        min_length, max_length = int(pcfg.get("min_length", 0) or 0), int(pcfg.get("max_length", 0) or 0)

        def make_batches(rank: int, world_size: int) -> ResumableBatches:
            stream = open_text_stream(text, rank=rank, world_size=world_size, seed=settings.seed, shuffle=corpus.shuffle,
                                      infinite=True, min_length=min_length, max_length=max_length)
            return ResumableBatches(stream, batcher)

        if run.distributed.keep_global_batch:
            # hosting several data ranks needs each one's own masking generator: not built
            raise ConfigError("distributed.keep_global_batch", "pretraining cannot host several data ranks per replica",
                              "leave it false: pretraining resumed on another number of replicas re-splits the epoch")
        # the loader training uses (training/virtual_ranks.py): the same checkpoints and resume
        self.batches = DataRanks(make_batches, env.rank, env.world_size)
        self.output_dir = Path(settings.output_dir)
        self._metrics: Any = None
        self._bar: Any = None
        self._loss_sum: torch.Tensor | None = None  # since the last save point, on the device
        self._finished_epoch_loss = 0.0

    # --- data and losses -----------------------------------------------------------------------
    def prepare(self, docs: list[Doc], parts: int) -> list[MaskedBatch]:
        subs = []
        for chunk in split_docs([d for d in docs if len(d.words)], parts):
            masked, selected = mask_docs(chunk, mask_prob=self.mask_prob)
            sel = torch.from_numpy(np.flatnonzero(selected))
            targets = self.model.objective.targets(chunk)[sel]
            # Non-blocking copies (from pinned memory on a GPU): the prefetch thread queues them
            # behind the step that is computing instead of waiting for it.
            features = to_device(self.model.tok2vec.featurize(masked), self.device)
            subs.append(MaskedBatch(features, to_device(sel, self.device), to_device(targets, self.device),
                                    sum(len(d.words) for d in chunk), self.model.objective.count(targets)))
        return subs

    def count(self, sub: MaskedBatch) -> list[float]:
        return [float(sub.count)]

    def losses(self, sub: MaskedBatch, step: int) -> dict[str, torch.Tensor]:
        hidden = self.model.tok2vec(sub.features)
        if self.dropout > 0 and self.model.training:
            hidden = F.dropout(hidden, p=self.dropout)
        return {LOSS: self.model.objective.loss(hidden[sub.selected], sub.targets)}

    def words(self, sub: MaskedBatch) -> int:
        return sub.words

    # --- the run -------------------------------------------------------------------------------
    def start(self, state: LoopState, *, resumed: bool, averages: ParameterAverages | None) -> None:
        state.extra = {"loss": 0.0, "epoch_loss": 0.0, "last_save": [], **state.extra}
        for module in self.model.modules():
            if isinstance(module, nn.Dropout):
                module.p = self.dropout
        if not self.env.is_rank_zero:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.json").write_text(json.dumps(self.config, indent=2))
        for name in state.extra["last_save"] if resumed else []:
            if not (self.output_dir / name).exists():  # committed, then crashed before writing it
                write_atomic(self.output_dir / name, tok2vec_bytes(self.model, averages))
        self._metrics = open(self.output_dir / "metrics.jsonl", "a", encoding="utf8")
        n_params = sum(p.numel() for p in self.model.tok2vec.parameters())
        self._say(f"pretraining {self.where} ({n_params:,} parameters) with {type(self.model.objective).__name__} | "
                  f"device: {self.device} | replicas: {self.env.world_size}")
        if resumed:
            self._say(f"resumed from the checkpoint of step {state.step} (epoch {state.epoch})")
        self._bar = progress_bar(desc="pretrain", unit="step", total=self.settings.max_steps or None, initial=state.step)

    def after_step(self, state: LoopState, result: StepResult, *, lr: float, data_time: float) -> None:
        # On the device until a save point or an epoch's end reads it (`_fold_losses`).
        kept = result.kept_loss_sums[0]  # a skipped step's NaN stays out
        self._loss_sum = kept if self._loss_sum is None else self._loss_sum + kept
        if self._bar is not None:
            self._bar.update(1)
        if self._metrics is not None and state.step % self.settings.log_every == 0:
            self._metrics.write(json.dumps({"event": "step", "step": state.step, "epoch": state.epoch, "loss": result.mean_loss(LOSS),
                                            "count": result.counts[LOSS], "words": result.words, "grad_norm": result.grad_norm,
                                            "skipped": result.skipped, "lr": lr}) + "\n")
            self._metrics.flush()

    def _fold_losses(self, state: LoopState) -> None:
        if self._loss_sum is not None:
            loss = float(self._loss_sum)
            state.extra["loss"] += loss
            state.extra["epoch_loss"] += loss
            self._loss_sum = None

    def is_save_point(self, state: LoopState, point: SavePoint, batch_index: int) -> bool:
        files = []
        if point.epoch_done:
            self._fold_losses(state)
            epoch = point.finished_epoch
            every = self.settings.n_save_epoch
            last_epoch = bool(self.settings.max_epochs) and epoch + 1 >= self.settings.max_epochs
            if not every or epoch % every == 0 or last_epoch:
                files.append(bin_name(epoch, temp=False))
            self._say(f"epoch {epoch}: step {state.step}, {state.words:,} words, epoch loss {state.extra['epoch_loss']:.2f}")
            # The committed state is already in the next epoch; the log line names the finished one.
            self._finished_epoch_loss, state.extra["epoch_loss"] = state.extra["epoch_loss"], 0.0
        elif self.settings.n_save_every and batch_index % self.settings.n_save_every == 0:
            files.append(bin_name(state.epoch, temp=True))
        if point.last:
            files.append("model-last.bin")
        state.extra["last_save"] = files
        if files:
            self._fold_losses(state)  # the checkpoint and log.jsonl carry the losses so far
        return bool(files) or point.epoch_done

    def evaluate(self, state: LoopState, averages: ParameterAverages | None, reducer: Reducer) -> float | None:
        return None  # spaCy's pretraining has no dev evaluation

    def save(self, state: LoopState, point: SavePoint, averages: ParameterAverages | None) -> None:
        if not self.env.is_rank_zero:
            return
        for name in state.extra["last_save"]:
            write_atomic(self.output_dir / name, tok2vec_bytes(self.model, averages))
            epoch = point.finished_epoch if point.epoch_done and not name.endswith(".temp.bin") and name != "model-last.bin" else state.epoch
            epoch_loss = self._finished_epoch_loss if point.epoch_done and name != bin_name(state.epoch, True) else state.extra["epoch_loss"]
            with open(self.output_dir / "log.jsonl", "a", encoding="utf8") as fh:
                fh.write(json.dumps({"nr_word": state.words, "loss": state.extra["loss"], "epoch_loss": epoch_loss,
                                     "epoch": epoch, "step": state.step, "file": name}) + "\n")

    def finish(self, state: LoopState, stop_reason: str) -> dict[str, Any]:
        if self._metrics is not None:
            self._metrics.close()
        if self._bar is not None:
            self._bar.close()
        self._say(f"stopped after {state.step} steps ({stop_reason}); {state.words:,} words; saved to {self.output_dir}")
        return {"step": state.step, "epoch": state.epoch, "loss": state.extra.get("loss", 0.0), "nr_word": state.words,
                "output_dir": str(self.output_dir), "stop_reason": stop_reason, "skipped_steps": state.skipped_steps}

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)
