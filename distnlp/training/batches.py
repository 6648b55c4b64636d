"""Batches that resume exactly, whatever the batcher.

Epochs are global: a session reads only the rest of the *open* epoch (`rest_of_epoch`), and a
rank whose share of it is trained on takes empty steps until the loop, seeing every rank there,
opens the next (`begin_epoch`). So every rank crosses an epoch boundary at the same optimizer
step, and no rank reads a document of epoch e + 1 while another still trains on epoch e
(docs/architecture.md, "Exact resume").

A batcher (batch_by_words, a user's) holds docs it has read but not yet emitted (its batch and
overflow buffers), so the stream's cursor alone would skip them on resume. This wrapper tags
each doc with the stream cursor it was read at, and keeps, for each pending doc, the stream's
whole state from just before reading it. Its state is that of the earliest doc still pending
plus the cursors of docs after it that were already emitted. Keeping the whole state (not just
the cursor) lets a stream with more inside than (epoch, position), such as several corpora
interleaved (data/mixture.py), go back to where it was; cursors must increase along a stream.
At every checkpoint the batcher session restarts from that state — in an uninterrupted run too —
so a resumed run sees exactly the batches the uninterrupted one sees.

The state also holds where the batch-size schedule is: the size after the one that formed the
last batch emitted (distnlp's batchers say which, `SizedBatch.size_index`; an oversize doc
yielded alone advances nothing, as in spaCy; a user's plain lists count one each). A restarted
batcher is told it (`start=`), so a schedule follows spaCy's one-size-per-batch across
checkpoints, kills and resubmissions instead of starting again, and the checkpoint interval
changes nothing (docs/architecture.md, "Exact resume").
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..data.batching import SizedBatch
from ..data.cursor import CursorStream
from ..data.doc import Doc
from ..data.elastic import resplit
from ..data.shuffle_window import shuffled_windows
from ..data.split_docs import split_at_sentences
from ..errors import CheckpointError

Cursor = tuple[int, ...]  # (epoch, position) of a doc's row; (epoch, position, piece) for a piece of a cut doc

_TAG = "_distnlp_cursor"

log = logging.getLogger(__name__)


def accepts_start(batcher: Callable[..., Any]) -> bool:
    """Whether a batcher takes `start=` (distnlp's do; a user's may not)."""
    try:
        params = inspect.signature(batcher).parameters
    except (TypeError, ValueError):
        return False
    return "start" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class ResumableBatches:
    def __init__(self, stream: CursorStream, batcher: Callable[[Iterable[Doc]], Iterator[list[Doc]]], *, shuffle_words: int = 0,
                 split_length: int = 0) -> None:
        """`shuffle_words` > 0: the batcher reads docs shuffled in windows of that many words
        (data/shuffle_window.py; corpus.shuffle_words). `split_length` > 0: docs longer than that
        are cut at sentence boundaries (data/split_docs.py; corpus.split_length), each piece
        with its own cursor (epoch, position, piece), so a checkpoint between two pieces of a
        doc resumes exactly."""
        self.stream = stream
        self.batcher = batcher
        self.shuffle_words = int(shuffle_words)
        self.split_length = int(split_length)
        self._skip: dict[Cursor, int] = {}  # emitted before the last checkpoint -> the doc's words
        self.exhausted = False  # this session's batches are all out (the open epoch is done here)
        self.open_epoch = int(stream.epoch)  # the global epoch being read; never read past it
        self.batches_emitted = 0  # since the run began: the global step when one batch = one step
        self.size_index = 0  # the schedule step the next batch's size comes from
        self._takes_start = accepts_start(batcher)
        if not self._takes_start:
            log.warning("the batcher %r takes no start= argument: a size schedule restarts at every checkpoint", batcher)
        self._start()

    @property
    def epoch(self) -> int:
        """The stream's epoch, or that of the earliest doc not yet batched (a batcher or a
        shuffle window reads ahead, and an epoch is done only when its last doc was trained on)."""
        if self._pending:
            return min(int(self.stream.epoch), next(iter(self._pending))[0])
        return int(self.stream.epoch)

    @property
    def reached_epoch(self) -> int:
        """The epoch this rank's data has reached: open_epoch + 1 once its share of the open epoch
        is trained on (the loop takes the minimum over ranks, and then calls `begin_epoch`)."""
        return self.epoch

    def begin_epoch(self, epoch: int) -> None:
        """Open `epoch` (every rank has finished the one before): a fresh batcher session reads it."""
        if epoch <= self.open_epoch:
            return
        if self.epoch < epoch:
            raise RuntimeError(f"epoch {epoch} opened while this rank is still in epoch {self.epoch}")
        self.open_epoch = int(epoch)
        self.exhausted = False
        self._start()

    def take(self) -> list[Doc]:
        """The next batch, or [] once this rank's share yields nothing (a zero-weight step)."""
        if self.exhausted:
            return []
        try:
            return next(self)
        except StopIteration:
            self.exhausted = True
            return []

    def _open_epoch_docs(self) -> Iterator[Doc]:
        if int(self.stream.epoch) > self.open_epoch:
            return iter(())  # this rank is done with the open epoch: it waits for the others
        return self.stream.rest_of_epoch()

    def _tagged(self) -> Iterator[Doc]:
        before = self.stream.state_dict()
        for doc in self._open_epoch_docs():
            row = self.stream.last_row
            if row is not None and row != (int(before["epoch"]), int(before["position"])):
                before = {**before, "epoch": row[0], "position": row[1]}  # rows that gave no doc came first
            row: Cursor = (int(before["epoch"]), int(before["position"]))
            state, before = before, self.stream.state_dict()
            pieces = split_at_sentences(doc, self.split_length)
            for i, piece in enumerate(pieces):
                cursor = row if len(pieces) == 1 else (*row, i)
                if cursor in self._skip:
                    continue  # emitted before the last checkpoint, re-read because an earlier doc was pending
                piece.user_data[_TAG] = cursor
                self._pending[cursor] = state  # every piece restarts from its row
                yield piece

    def _start(self) -> None:
        # cursor -> the stream's state just before reading that doc; insertion-ordered: read order
        self._pending: dict[Cursor, dict[str, Any]] = {}
        self._emitted_after: dict[Cursor, int] = {}  # cursor -> words: an elastic re-split balances by them
        self._num_batches = 0
        docs: Iterable[Doc] = self._tagged()
        if self.shuffle_words > 0:
            # Seeded from where this session starts, so a resumed run shuffles as the uninterrupted one.
            at = self.stream.state_dict()
            seed = [int(self.stream.seed), int(self.stream.rank), int(at["epoch"]), int(at["position"])]
            docs = shuffled_windows(docs, self.shuffle_words, seed, epoch_of=lambda doc: doc.user_data[_TAG][0])
        self._iter = iter(self.batcher(docs, start=self.size_index) if self._takes_start else self.batcher(docs))

    def __iter__(self) -> Iterator[list[Doc]]:
        return self

    def __next__(self) -> list[Doc]:
        batch = next(self._iter)
        for doc in batch:
            cursor = doc.user_data.get(_TAG)
            if cursor is not None:
                self._pending.pop(cursor, None)
                self._emitted_after[cursor] = max(len(doc), 1)  # as `CorpusInfo.row_words` counts it
        self._num_batches += 1
        self.batches_emitted += 1
        if not isinstance(batch, SizedBatch):  # a user's batcher: each batch is one size step
            self.size_index += 1
        elif batch.size_index is not None:  # None: an oversize doc alone, which advances nothing
            self.size_index = int(batch.size_index) + 1
        if self._num_batches % 1024 == 0:
            # Only cursors after the earliest pending doc matter; keep the set small.
            first = next(iter(self._pending), None)
            self._emitted_after = {c: w for c, w in self._emitted_after.items() if first is not None and c[:2] >= first[:2]}
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self._pending:
            first, before = next(iter(self._pending.items()))
            stream_state = dict(before)  # for a DocStream: today's state with the cursor moved back
            # From the earliest pending doc's row on (its row is read again: pieces of it already out are skipped).
            emitted = sorted((c, w) for c, w in {**self._skip, **self._emitted_after}.items() if c[:2] >= first[:2])
        else:
            stream_state = dict(self.stream.state_dict())
            # Nothing pending: skips still ahead of the stream (a state just loaded) stay skips.
            at = (int(stream_state["epoch"]), int(stream_state["position"]))
            emitted = sorted((c, w) for c, w in self._skip.items() if c >= at)
        # [epoch, position, words], and the piece index after them for a piece of a cut doc
        return {"stream": stream_state, "skip": [[c[0], c[1], w, *c[2:]] for c, w in emitted], "batches_emitted": self.batches_emitted,
                "size_index": self.size_index, "open_epoch": self.open_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])
        # [epoch, position, words(, piece)]; checkpoints before words were saved: [epoch, position]
        self._skip = {(int(s[0]), int(s[1]), *(int(p) for p in s[3:])): int(s[2]) if len(s) > 2 else -1
                      for s in state.get("skip", [])}
        self.batches_emitted = int(state.get("batches_emitted", 0))
        self.size_index = int(state.get("size_index", self.batches_emitted))
        # Checkpoints before global epochs: the rank's own epoch was the one it read.
        self.open_epoch = int(state.get("open_epoch", state["stream"]["epoch"]))
        self.exhausted = False
        self._start()

    def load_resplit(self, states: list[dict[str, Any]]) -> None:
        """Continue a checkpoint of len(states) replicas on this stream's world size (elastic
        resume, data/elastic.py): this rank takes its share of what the epoch has left."""
        info = self.stream.info
        if info is None:
            raise CheckpointError(f"this data stream ({type(self.stream).__name__}) cannot continue on a different number "
                                  f"of replicas ({len(states)} saved); resume with distributed.num_workers={len(states)}, "
                                  "or with distributed.keep_global_batch=true (each replica then hosts several saved ones)")
        mine, = resplit(info, states, int(self.stream.world_size), shuffle=bool(self.stream.shuffle),
                        by_words=self.stream.balance_by_words, ranks=[int(self.stream.rank)])
        self.load_state_dict(mine)

    def restart(self) -> None:
        """Re-read from the earliest pending doc with a fresh batcher (called at checkpoints)."""
        self.load_state_dict(self.state_dict())
