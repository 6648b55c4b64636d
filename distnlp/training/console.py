"""What a run shows its user: lines (the console table, start and stop messages) and a progress
bar between evaluations. Only rank 0 talks to the console.

One process prints to its own terminal (`TerminalConsole`). A Ray replica has no terminal of its
own: its console sends the same calls to the driver (ray_backend/relay.py), which replays them on
a `TerminalConsole`, so a run under Ray reads exactly like a single-process run.
"""
from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def update(self, steps: int, words: int) -> None: ...

    def close(self) -> None: ...


class Console(Protocol):
    def print(self, text: str) -> None: ...

    def progress(self, total: int) -> Progress: ...


class StepProgress:
    """A tqdm bar over the steps to the next evaluation with words/s beside it; tqdm stays quiet
    when stderr is not a terminal (CI logs, `ray job logs`)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, leave=False, desc="train", unit="step", disable=None, file=stream or sys.stderr, dynamic_ncols=True)
        self._words, self._t0 = 0, time.perf_counter()

    def update(self, steps: int, words: int) -> None:
        self._words += words
        rate = self._words / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{rate:,.0f} words/s", refresh=False)
        self._bar.update(steps)

    def close(self) -> None:
        self._bar.close()


class TerminalConsole:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def print(self, text: str) -> None:
        from tqdm import tqdm

        stream = self.stream or sys.stdout  # looked up late: pytest's capsys swaps sys.stdout
        with tqdm.external_write_mode(file=stream):  # a line while a bar is drawn: clear it, redraw below
            print(text, file=stream, flush=True)

    def progress(self, total: int) -> Progress:
        return StepProgress(total)


class SilentProgress:
    def update(self, steps: int, words: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_or_silent(console: Console | None, total: int) -> Progress:
    return console.progress(total) if console is not None else SilentProgress()
