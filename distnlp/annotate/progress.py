"""The driver's progress bar for annotate: docs done of the total, with words/s.

Drawn by distnlp.progress (tqdm on stderr; silent off a terminal and under CI); this adds the
words/s figure the bar shows and the final summary line reports.
"""
from __future__ import annotations

import time

from ..progress import progress_bar


class Progress:
    def __init__(self, total_rows: int, done_rows: int = 0) -> None:
        self.start = time.perf_counter()
        self.words = 0
        self.bar = progress_bar(desc="annotate", unit="doc", total=total_rows, initial=done_rows)

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
