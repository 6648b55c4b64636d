"""Annotate inputs: plain text lines, JSONL `{"text", "id"}` lines, or distnlp corpora, local or
at any pyarrow filesystem URI, planned as numbered splits of at most `rows_per_shard` rows.

A split never spans two inputs, and split i always becomes output shard i: the plan depends only
on the inputs and `rows_per_shard`, so a rerun finds the same splits and can skip finished ones.
A row that cannot be annotated (empty text, non-UTF-8 bytes, malformed JSON, no words) is not an
error: it becomes a reject with its reason, so every input row is accounted for.
"""
from __future__ import annotations

import functools
import io
import json
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from ..data.doc import Doc
from ..data.shards import META_FILE, CorpusInfo, open_corpus, resolve_path
from ..data.stream import table_to_docs
from ..errors import CorpusError

INPUT_FORMATS = ("auto", "text", "jsonl", "corpus")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Source:
    path: str  # as the user gave it
    kind: str  # "text" | "jsonl" | "corpus"
    rows: int


@dataclass(frozen=True)
class Split:
    index: int  # = the output shard's number
    source: int  # index into Plan.sources
    start: int  # first row of the source (0-based line or corpus row)
    stop: int
    offset: int = 0  # byte offset of line `start` (text and JSONL)


@dataclass(frozen=True)
class Plan:
    sources: tuple[Source, ...]
    splits: tuple[Split, ...]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)


@dataclass
class InputRow:
    """One input row: the text (or a corpus doc's words) to annotate, or why it cannot be."""

    where: str  # "file:line" or "corpus#row", for rejects
    doc_id: str
    text: str | None = None
    doc: Doc | None = None
    reject: str | None = None


def plan_inputs(paths: Sequence[str], rows_per_shard: int, input_format: str = "auto") -> Plan:
    if rows_per_shard < 1:
        raise CorpusError("rows_per_shard", f"must be at least 1, not {rows_per_shard}", "pass rows_per_shard=N with N >= 1")
    sources: list[Source] = []
    splits: list[Split] = []
    for path, kind in (item for p in paths for item in _expand(p, input_format)):
        if kind == "corpus":
            rows = open_corpus(path).n_docs
            starts = [(s, 0) for s in range(0, rows, rows_per_shard)]
        else:
            rows, starts = _line_starts(path, rows_per_shard)
        src = len(sources)
        sources.append(Source(path=path, kind=kind, rows=rows))
        for start, offset in starts:
            splits.append(Split(index=len(splits), source=src, start=start, stop=min(start + rows_per_shard, rows), offset=offset))
    if not splits:
        raise CorpusError(", ".join(paths), "no rows in the inputs", "check the input paths")
    return Plan(tuple(sources), tuple(splits))


def read_split(plan: Plan, split: Split) -> list[InputRow]:
    """The rows of one split, in input order."""
    source = plan.sources[split.source]
    if source.kind == "corpus":
        return _corpus_rows(source, split.start, split.stop)
    return list(_line_rows(source, split))


def _expand(path: str, input_format: str) -> list[tuple[str, str]]:
    """[(path, kind)]: a corpus or a file is itself; another directory is its files, sorted by name
    (hidden ones left out), so `s3://bucket/texts/` reads every text file in it."""
    if input_format not in INPUT_FORMATS:
        raise CorpusError("--input-format", f"unknown format {input_format!r}", f"use one of {', '.join(INPUT_FORMATS)}")
    fs, inner = resolve_path(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise CorpusError(path, "input not found", "check the path (a local path or a pyarrow filesystem URI such as s3://bucket/dir)")
    if info.type != pafs.FileType.Directory:
        if input_format == "corpus":
            raise CorpusError(path, "is a file, not a corpus directory", "fix --input-format")
        return [(path, input_format if input_format != "auto" else _file_kind(inner))]
    if fs.get_file_info(f"{inner.rstrip('/')}/{META_FILE}").type == pafs.FileType.File and input_format in ("auto", "corpus"):
        return [(path, "corpus")]
    if input_format == "corpus":
        raise CorpusError(path, f"no {META_FILE}: not a distnlp corpus", "pass a corpus written by distnlp convert/annotate, or fix --input-format")
    files = sorted((i for i in fs.get_file_info(pafs.FileSelector(inner.rstrip("/"))) if i.type == pafs.FileType.File and not i.base_name.startswith(".")),
                   key=lambda i: i.base_name)
    if not files:
        raise CorpusError(path, "a directory with no files to annotate", "pass text/JSONL files, a directory of them, or a distnlp corpus")
    sep = "" if path.endswith("/") else "/"
    return [(f"{path}{sep}{i.base_name}", input_format if input_format != "auto" else _file_kind(i.base_name)) for i in files]


def _file_kind(name: str) -> str:
    return "jsonl" if name.lower().endswith(_JSONL_SUFFIXES) else "text"


def _open_lines(path: str) -> io.BufferedReader:
    fs, inner = resolve_path(path)
    try:
        return io.BufferedReader(fs.open_input_file(inner), buffer_size=1 << 20)
    except OSError as exc:
        raise CorpusError(path, f"cannot read: {exc}", "check the path and its permissions") from None


def _line_starts(path: str, rows_per_shard: int) -> tuple[int, list[tuple[int, int]]]:
    """(rows, [(first row, its byte offset)] every rows_per_shard lines): one pass, bytes only."""
    starts: list[tuple[int, int]] = []
    rows = offset = 0
    with _open_lines(path) as f:
        for line in f:
            if rows % rows_per_shard == 0:
                starts.append((rows, offset))
            rows += 1
            offset += len(line)
    return rows, starts


def _line_rows(source: Source, split: Split) -> Iterator[InputRow]:
    name = posixpath.basename(source.path.rstrip("/"))
    with _open_lines(source.path) as f:
        f.seek(split.offset)
        for row in range(split.start, split.stop):
            raw = f.readline()
            if not raw:
                raise CorpusError(source.path, f"ended at line {row} but had {source.rows} lines when planned (changed while annotating?)",
                                  "rerun with an input that does not change")
            yield _line_row(raw, f"{source.path}:{row + 1}", f"{name}:{row + 1}", source.kind)


def _line_row(raw: bytes, where: str, default_id: str, kind: str) -> InputRow:
    row = InputRow(where=where, doc_id=default_id)
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        row.reject = f"not UTF-8 (byte {exc.start})"
        return row
    if kind == "jsonl":
        if not line.strip():
            row.reject = "empty line"
            return row
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            row.reject = f"malformed JSON ({exc.msg} at column {exc.colno})"
            return row
        if isinstance(record, dict) and record.get("id") is not None:
            row.doc_id = str(record["id"])
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            row.reject = 'no "text" string (expected {"text": ..., "id": ...})'
            return row
        line = record["text"]
    if not line.strip():
        row.reject = "empty text"
        return row
    row.text = line
    return row


@functools.lru_cache(maxsize=8)
def _open_corpus_once(path: str, rows: int) -> CorpusInfo:
    """A corpus's meta.json and shard footers, read once per process, not once per split
    (`rows`, as planned, keys the cache too: a corpus rewritten since is read afresh)."""
    return open_corpus(path)


def _corpus_rows(source: Source, start: int, stop: int) -> list[InputRow]:
    path = source.path
    info = _open_corpus_once(path, source.rows)
    name = posixpath.basename(path.rstrip("/"))
    columns = [c for c in ("doc_id", "words", "spaces") if c in info.columns]
    rows: list[InputRow] = []
    first = 0
    for unit in info.units:
        if first + unit.rows > start and first < stop:
            table = info.read_unit(unit, columns)
            lo, hi = max(start - first, 0), min(stop - first, unit.rows)
            docs = table_to_docs(table.slice(lo, hi - lo), info.where(f"{info.shards[unit.shard].name} row group {unit.row_group}"))
            for i, doc in enumerate(docs):
                n = first + lo + i
                row = InputRow(where=f"{path}#{n}", doc_id=doc.doc_id if doc.doc_id is not None else f"{name}#{n}")
                if len(doc) == 0:
                    row.reject = "no words"
                else:
                    row.doc = doc.copy_unannotated()
                    row.doc.doc_id = row.doc_id
                rows.append(row)
        first += unit.rows
    return rows
