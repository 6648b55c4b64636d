"""The one training loop, for the pipeline's heads and for pretraining objectives alike.

Read it top to bottom (docs/architecture.md, "The engine"):

    restore the newest committed checkpoint of this run (or start at step 0)
    until a stop: take a batch (prepared while the last step ran) -> one optimizer step -> advance step and epoch
        compute `last` first (max_steps, max_epochs; every rank agrees)
        on a logging step or a save point, read the steps' numbers off the device (training/pending_steps.py)
        at a save point (or the last step): evaluate -> commit a checkpoint -> save the model
        stop on `last`, or on patience after an evaluation

The loop is plain torch: collectives come in only through the reducer, and checkpoints only
through the coordinator, so the same loop runs on one process, under torchrun, or on Ray.
What is trained, evaluated and saved is the objective's business (training/objective.py).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..config.settings import LoopSettings
from .coordinator import Coordinator, FailureInjection
from .env import WorkerEnv
from .loop_state import LoopState, SavePoint
from .objective import Objective
from .optim import ParameterAverages, build_optimizer, set_learn_rate
from .pending_steps import PendingSteps
from .prefetch import InputPrefetcher
from .step import LocalReducer, Reducer, StepResult, optimizer_step


def run_loop(objective: Objective, settings: LoopSettings, env: WorkerEnv, *, reducer: Reducer | None = None,
             coordinator: Coordinator | None = None, failure: FailureInjection | None = None) -> dict[str, Any]:
    reducer = reducer or LocalReducer()
    model = objective.model
    optimizer, learn_rate = build_optimizer(model, settings.optimizer)
    averages = ParameterAverages(model) if settings.optimizer.use_averages else None
    batches = objective.batches

    state = LoopState()
    restored = None
    if coordinator is not None:
        restored = coordinator.restore(nlp=model, optimizer=optimizer, averages=averages, stream=batches)
    if restored is not None:
        state = LoopState.from_dict(restored)
    resumed = restored is not None
    failure = FailureInjection(failure.step, failure.in_checkpoint, armed=not resumed) if failure else FailureInjection(armed=False)
    if coordinator is not None:
        coordinator.failure = failure
    objective.start(state, resumed=resumed, averages=averages)
    model.train()

    stop_early = False
    done = _finished(settings, state)
    pending = PendingSteps(settings.nonfinite)  # the steps' device numbers, read at log and save points
    prefetcher = InputPrefetcher(batches, lambda docs: objective.prepare(docs, settings.accumulate_gradient), enabled=settings.prefetch)
    try:
        while not done:
            failure.at_step(state.step, env.rank, env.world_size)
            prepared, t_data = prefetcher.take()
            subs = prepared.sub_batches
            # Whether this rank's share of the open epoch is trained on with this batch: summed over
            # ranks with the step's host numbers (with a 1 per rank to count them), not a collective of its own.
            share_done = float(prepared.reached_epoch > state.epoch)
            set_learn_rate(optimizer, learn_rate(state.step))
            result = optimizer_step(objective, subs, step=state.step, optimizer=optimizer, grad_clip=settings.optimizer.grad_clip,
                                    reducer=reducer, nonfinite=settings.nonfinite, extra_sums=(share_done, 1.0), read_later=True)
            pending.add(result)
            if averages is not None:
                averages.update(result.applied)  # on the device: a skipped step leaves them alone
            state.step += 1
            state.batch_in_epoch += 1
            state.words += result.words
            # The epoch every rank has finished reading: a rank's data never reads past the open
            # epoch, so every rank done with it means all of them are in the next one.
            done_ranks, ranks = result.extra_sums
            epoch_now = state.epoch + 1 if done_ranks == ranks else state.epoch
            point = SavePoint(epoch_done=epoch_now > state.epoch, finished_epoch=state.epoch, last=False)
            batch_index = state.batch_in_epoch - 1
            if point.epoch_done:
                state.epoch, state.batch_in_epoch = epoch_now, 0
                # Every rank has trained on its share of the epoch: all open the next one together
                # (the batch prefetched from the closed one is dropped first).
                prefetcher.rewind()
                batches.begin_epoch(epoch_now)
            # `last` first: evaluation and saving below then happen on the final step too.
            point.last = _finished(settings, state)
            if point.epoch_done and not point.last:
                prefetcher.start()  # the new epoch's first batch, read while this step is logged and evaluated
            if state.step % settings.log_every == 0:
                state.skipped_steps += pending.read()  # the objective logs this step's numbers
            objective.after_step(state, result, lr=learn_rate(state.step - 1), data_time=t_data)
            stop_early = False
            wanted = objective.is_save_point(state, point, batch_index)
            if point.last or wanted:
                state.skipped_steps += pending.read()  # a non-finite step stops the run before anything is saved
                score = objective.evaluate(state, averages, reducer)
                if score is not None and (state.best_score is None or score > state.best_score):
                    state.best_score, state.best_step = score, state.step
                stop_early = bool(settings.patience) and score is not None and state.step - state.best_step >= settings.patience
                point.last = point.last or stop_early
                if coordinator is not None:
                    prefetcher.rewind()  # the checkpoint holds the data state before the prefetched batch
                    coordinator.checkpoint(step=state.step, nlp=model, optimizer=optimizer, averages=averages, stream=batches,
                                           state=asdict(state), metrics={"step": state.step, "score": score, "epoch": state.epoch})
                    batches.restart()  # an uninterrupted run re-batches here exactly as a resumed one does
                    if not point.last:
                        prefetcher.start()  # the restarted stream's first batch, read while the model is saved
                objective.save(state, point, averages)
            done = point.last
    finally:
        prefetcher.close()
    reducer.close()
    if stop_early:
        stop_reason = "patience"
    elif settings.max_steps and state.step >= settings.max_steps:
        stop_reason = "max_steps"
    else:
        stop_reason = "max_epochs"
    return objective.finish(state, stop_reason)


def _finished(settings: LoopSettings, state: LoopState) -> bool:
    return bool(settings.max_steps and state.step >= settings.max_steps) or bool(settings.max_epochs and state.epoch >= settings.max_epochs)


__all__ = ["LoopState", "SavePoint", "StepResult", "run_loop"]
