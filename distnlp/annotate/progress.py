"""The driver's progress bar: docs done of the total, and words/s (tqdm; quiet when stderr is not a TTY)."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total_rows: int, done_rows: int = 0) -> None:
        self.start = time.perf_counter()
        self.words = 0
        self.bar = tqdm(total=total_rows, initial=done_rows, unit="doc", desc="annotate", file=sys.stderr,
                        disable=not sys.stderr.isatty(), dynamic_ncols=True)

    def add_words(self, n: int) -> None:
        self.words += n
        self.bar.set_postfix_str(f"{self.words_per_second:,.0f} words/s", refresh=False)

    def add_rows(self, n: int) -> None:
        self.bar.update(n)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def words_per_second(self) -> float:
        return self.words / max(self.elapsed, 1e-9)

    def close(self) -> None:
        self.bar.close()
