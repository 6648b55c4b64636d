"""CSV / TSV text classification (`text` + `label`, or `category` as in banking77): exclusive classes.

A pre-pass collects the label inventory, so every doc's `cats` has every label (1.0 for its own,
0.0 for the rest): the exclusive textcat's softmax needs the full set, and meta.json lists it.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ...errors import CorpusError
from ..doc import Doc
from ..tokenizer import Tokenizer
from .lines import iter_lines, where
from .report import ConvertReport

TEXT_COLUMNS = ("text", "sentence", "utterance")
LABEL_COLUMNS = ("label", "category", "intent", "class")


def read_csv(
    path: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    delimiter: str | None = None,
    tokenizer: Tokenizer | None = None,
    report: ConvertReport | None = None,
) -> Iterator[Doc]:
    """Docs with one-hot `cats` over the file's label set (tab-separated for .tsv files)."""
    tok = tokenizer or Tokenizer()
    report = report if report is not None else ConvertReport()
    delim = delimiter or ("\t" if Path(path).suffix.lower() == ".tsv" else ",")
    labels = sorted({label for _, _, label in _rows(path, delim, text_column, label_column)})
    report.info["cats_exclusive"] = True
    stem = Path(path).stem
    for lineno, text, label in _rows(path, delim, text_column, label_column):
        doc = tok(text)
        if not doc.words:
            report.counts["empty_docs"] += 1
            continue
        doc.doc_id = f"{stem}:{lineno}"
        doc.cats = {lab: 1.0 if lab == label else 0.0 for lab in labels}
        yield doc


def _rows(path: str | Path, delim: str, text_column: str | None, label_column: str | None) -> Iterator[tuple[int, str, str]]:
    """(line where the row starts, text, label) for every data row, validated."""
    lines = (line for _, line in iter_lines(path, keepends=True))
    reader = csv.reader(lines, delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise CorpusError(where(path, 1), "the file is empty", "a header line with text and label columns is needed") from None
    t_idx = _column(path, header, text_column, TEXT_COLUMNS, "text")
    l_idx = _column(path, header, label_column, LABEL_COLUMNS, "label")
    start = reader.line_num + 1
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise CorpusError(where(path, start), f"{len(row)} fields, but the header has {len(header)}", "quote texts that contain the delimiter")
            label = row[l_idx].strip()
            if not label:
                raise CorpusError(where(path, start), "empty label", "every row needs a label")
            yield start, row[t_idx], label
            start = reader.line_num + 1
    except csv.Error as e:
        raise CorpusError(where(path, reader.line_num), f"malformed CSV ({e})", "check the quoting") from None


def _column(path: str | Path, header: list[str], wanted: str | None, defaults: tuple[str, ...], what: str) -> int:
    names = [h.strip() for h in header]
    for name in (wanted,) if wanted else defaults:
        if name in names:
            return names.index(name)
    asked = repr(wanted) if wanted else " or ".join(repr(d) for d in defaults)
    raise CorpusError(where(path, 1), f"no {what} column {asked} in the header {names}", f"name the {what} column {defaults[0]!r}")
