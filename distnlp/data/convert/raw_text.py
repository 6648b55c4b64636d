"""Plain text for pretraining: every non-blank line is one doc, tokenized, with no annotations."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..doc import Doc
from ..tokenizer import Tokenizer
from .lines import iter_lines
from .report import ConvertReport


def read_text(path: str | Path, *, tokenizer: Tokenizer | None = None, report: ConvertReport | None = None) -> Iterator[Doc]:
    """One Doc per non-blank line (line terminators dropped, other whitespace kept as tokens)."""
    tok = tokenizer or Tokenizer()
    report = report if report is not None else ConvertReport()
    stem = Path(path).stem
    for lineno, line in iter_lines(path):
        if not line.strip():
            report.counts["blank_lines"] += 1
            continue
        doc = tok(line)
        doc.doc_id = f"{stem}:{lineno}"
        yield doc
