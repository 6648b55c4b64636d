"""The resumable cursor shared by every per-rank stream (Parquet shards, raw text).

A stream is a sequence of epochs; `position` counts rows of this rank's share already consumed
in the current epoch. Subclasses supply `_rest_of_epoch()`, which yields the remaining docs and
moves the cursor *before* handing each one out, so a checkpoint taken right after a doc never
yields it again.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError
from .doc import Doc


class CursorStream:
    # (epoch, position) of the row the last doc handed out came from, for streams where rows
    # that give no doc (length-filtered, or used before an elastic resume) can come between two
    # docs (DocStream sets it); None: a doc's row is the cursor before it was read
    last_row: tuple[int, int] | None = None
    rank: int
    world_size: int
    seed: int
    infinite: bool
    epoch: int = 0
    position: int = 0
    shuffle: bool = True
    # The corpus's row groups and word counts, for streams that an elastic resume can re-split
    # over another number of ranks (data/elastic.py; DocStream sets it); None: it cannot.
    info: Any = None
    balance_by_words: bool = True  # ranks' shares hold equal words (else equal docs); see DocStream

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "rank": self.rank,
                "world_size": self.world_size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("world_size", "seed"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ConfigError(
                    key, f"the saved data cursor was taken with {key}={state[key]}, this stream has {getattr(self, key)}",
                    "resume with the same world size and seed, or restart the epoch with set_epoch()",
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self) -> Iterator[Doc]:
        """Epoch mode: the rest of the current epoch. Infinite mode: epoch after epoch."""
        empty_epochs = 0
        while True:
            epoch, fresh = self.epoch, self.position == 0
            n = 0
            for doc in self._rest_of_epoch():
                n += 1
                yield doc
            if not self.infinite:
                return
            empty_epochs = empty_epochs + 1 if fresh and n == 0 else 0
            if empty_epochs and self._gives_nothing_after(epoch, empty_epochs):
                return  # a whole epoch gave nothing (empty share, all filtered): it never will

    def _gives_nothing_after(self, epoch: int, empty_epochs: int) -> bool:
        """Whether `empty_epochs` whole epochs in a row, the last `epoch`, that gave nothing mean
        no later one will (true where shares keep their size from epoch to epoch)."""
        return True

    def rest_of_epoch(self) -> Iterator[Doc]:
        """The current epoch's remaining docs, whatever the mode; the cursor ends at (epoch + 1, 0).
        Training reads this way: the loop opens the next epoch once every rank is done."""
        return self._rest_of_epoch()

    def _rest_of_epoch(self) -> Iterator[Doc]:
        raise NotImplementedError
