"""Progress bars for the long commands (convert, init vectors, pretrain, evaluate): shown on a
terminal, silent where output goes to a file or a CI log (a bar there is a wall of \\r lines).

tqdm draws them on stderr, so a command's own output on stdout stays clean for pipes.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def progress_enabled(stream: TextIO | None = None) -> bool:
    """On a terminal, and not under CI (some CI runners give jobs a pseudo-terminal)."""
    stream = stream if stream is not None else sys.stderr
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(*, desc: str, unit: str, total: int | float | None = None, initial: int = 0) -> Any:
    """A bar to `update(n)` and `close()`; a no-op one where progress is not shown."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress_enabled(), leave=False, dynamic_ncols=True,
                mininterval=0.5)


def with_progress(items: Iterable[T], *, desc: str, unit: str, total: int | float | None = None) -> Iterator[T]:
    """`items`, counted on a bar as they are consumed; the bar is closed when they run out."""
    bar = progress_bar(desc=desc, unit=unit, total=total)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
