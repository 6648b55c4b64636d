"""Step k + 1's input, prepared while step k computes (`training.prefetch`).

Reading, batching, featurizing and building targets run on one background thread, so the loop
finds the next step's sub-batches ready instead of preparing them between steps. Torch releases
the GIL in its kernels (and on a GPU while the loop waits for the device at a logging step),
which is when the thread runs.

Exact resume is kept by never letting a prefetched batch cross a save point or an epoch
boundary: the thread records the data state from just before it took the batch, and `rewind`
(called by the loop before a checkpoint, and before a new epoch opens) discards the batch and
puts that state back. A checkpoint therefore holds the state an unprefetched run would hold,
and the batch is read again after it, exactly as an unprefetched run reads it after its own
restart at every checkpoint (training/batches.py). That read (the restart reopens the stream at
the saved state and refills the shuffle window) starts as soon as the checkpoint is committed,
so it runs while the model is saved (`start`); a new epoch's first batch likewise starts as soon
as the epoch is opened. A prepare that draws from a global random
generator (pretraining's masks) stays exact too: the state is restored with the generator's
draws already made, in a resumed run as in an uninterrupted one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from ..data.doc import Doc
from .virtual_ranks import DataRanks


@dataclass(frozen=True)
class PreparedInput:
    sub_batches: list[Any]
    reached_epoch: int  # this rank's `reached_epoch` once the batch is taken
    data_state: dict[int, dict[str, Any]]  # each hosted data rank's state from just before the batch was taken


class InputPrefetcher:
    def __init__(self, batches: DataRanks, prepare: Callable[[list[Doc]], list[Any]], *, enabled: bool = True) -> None:
        self.batches = batches
        self.prepare = prepare
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="distnlp-input", initializer=_on_callers_gpu()) if enabled else None
        self._next: Future[PreparedInput] | None = None

    def _prepared(self) -> PreparedInput:
        before = self.batches.data_state() if self._pool is not None else {}
        docs = self.batches.take()
        return PreparedInput(self.prepare(docs), self.batches.reached_epoch, before)

    def take(self) -> tuple[PreparedInput, float]:
        """This step's input, and the seconds the loop waited for it; starts the next one."""
        t0 = time.perf_counter()
        current = self._next.result() if self._next is not None else self._prepared()
        waited = time.perf_counter() - t0
        self._next = None
        self.start()
        return current, waited

    def start(self) -> None:
        """Begin preparing the next batch now, if none is on the way: after a checkpoint's restart
        or a new epoch's start, its first batch is read while the loop saves, logs or evaluates,
        not at the next step."""
        if self._pool is not None and self._next is None:
            self._next = self._pool.submit(self._prepared)

    def rewind(self) -> None:
        """Discard the prefetched batch and put the data back to just before it was taken."""
        if self._next is None:
            return
        ahead, self._next = self._next, None
        self.batches.set_data_state(ahead.result().data_state)

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel() or self._next.exception()  # let a running prepare finish; its error is not ours now
            self._next = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _on_callers_gpu() -> Callable[[], None]:
    """A new thread starts on GPU 0: put it on the loop's GPU, so copies the prepare makes to a
    device given without an index land on the replica's GPU."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return lambda: None
    device = torch.cuda.current_device()
    return lambda: torch.cuda.set_device(device)
